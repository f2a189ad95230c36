"""What a service answered during one send, and what that answer means for a retry.

Apprise reports a failed send as True/False plus a log line; it ignores Slack's and Telegram's
429 Retry-After and does not tell a bad token from a service that is briefly down. Its plugins
for HTTP services (``slack://``, ``tgram://``, ``json://``, ``form://`` ...) call the module-level
``requests.get/post/request``, each of which opens a ``requests.Session`` and goes through
``Session.send``; its e-mail plugin goes through ``smtplib.SMTP.login`` and ``sendmail``. Those
methods are the one place we hook: :func:`install` wraps them (once, idempotently) so that, while a
:func:`capture` is open in the calling context, each response or refusal is appended to that
capture's list. Outside a capture the wrappers only read one context variable.

Scoping: :func:`capture` sets a context variable holding a fresh list. Apprise runs blocking
plugins in worker threads with a copy of the caller's context (``contextvars.copy_context``), so
the threads of *this* send see *this* list and concurrent sends on other channels see their own.

:func:`classify` is pure: the answers and Apprise's reason in, a :class:`Verdict` out.

What is reliable and what is not:

- HTTP status, ``Retry-After`` and the body are what the service sent; the classification follows
  HTTP semantics (429/503 and 5xx transient, other 4xx permanent), which Slack's and Telegram's
  documented APIs and generic webhooks follow.
- SMTP: a 5xx reply to the login (535: wrong credentials), MAIL FROM, RCPT TO or DATA is
  permanent, 4xx transient. A failure before that (connection refused, TLS) is not captured and
  stays transient with Apprise's reason.
- A send to several targets in one URL (several Telegram chats) is permanent only when every
  failed answer is; a retry may then repeat the message to the targets that accepted it.
"""

from __future__ import annotations

import contextlib
import json
import math
import smtplib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError

__all__ = [
    "MAX_RETRY_AFTER",
    "HttpAnswer",
    "SmtpAnswer",
    "Verdict",
    "capture",
    "classify",
    "install",
    "parse_retry_after",
]

MAX_RETRY_AFTER = 24 * 3600.0
"""Seconds: a longer Retry-After is taken as this (a typo or a hostile service must not park a
channel for a year)."""
BODY_START = 512
"""Characters of a response body kept: enough for a service's error message."""
TRANSIENT_4XX = frozenset({408, 425, 429})
"""Client errors that a later attempt can succeed after (timeout, too early, too many)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One HTTP response (``status`` set) or one request that got none (``error`` set)."""

    status: int | None
    retry_after: str | None = None
    """The Retry-After header, as sent."""
    body: str = ""
    """The start of the body (:data:`BODY_START` characters)."""
    error: str | None = None
    """The exception's class name when no response came (a timeout, a refused connection)."""
    maybe_sent: bool = False
    """No response came, but the request may have reached the service (it was not refused
    while connecting): the send failed, yet the service may have the message."""


@dataclass(frozen=True, slots=True)
class SmtpAnswer:
    """One SMTP refusal: the reply code and text the server gave."""

    code: int
    message: str


Answer = HttpAnswer | SmtpAnswer

_answers: ContextVar[list[Answer] | None] = ContextVar("monitor_service_answers", default=None)
_install_lock = threading.Lock()
_installed = False


@contextlib.contextmanager
def capture() -> Iterator[list[Answer]]:
    """Collect the answers of every request made in this context (and in worker threads started
    with a copy of it) until the block ends. Requires :func:`install` to have run."""
    answers: list[Answer] = []
    token = _answers.set(answers)
    try:
        yield answers
    finally:
        _answers.reset(token)


def install() -> None:
    """Wrap ``requests.Session.send``, ``smtplib.SMTP.login`` and ``smtplib.SMTP.sendmail`` to
    feed :func:`capture`.

    Idempotent. The wrappers change nothing about the call: same arguments, same result, same
    exception.
    """
    global _installed  # noqa: PLW0603 (one process-wide hook, installed once)
    with _install_lock:
        if _installed:
            return
        requests.Session.send = _wrap_send(requests.Session.send)  # type: ignore[method-assign]
        smtplib.SMTP.sendmail = _wrap_sendmail(smtplib.SMTP.sendmail)  # type: ignore[method-assign]
        smtplib.SMTP.login = _wrap_login(smtplib.SMTP.login)  # type: ignore[method-assign]
        _installed = True


def _wrap_send(send: Callable[..., requests.Response]) -> Callable[..., requests.Response]:
    def send_and_note(
        self: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        answers = _answers.get()
        if answers is None:
            return send(self, request, **kwargs)
        try:
            response = send(self, request, **kwargs)
        except requests.RequestException as exc:
            answers.append(HttpAnswer(None, error=type(exc).__name__, maybe_sent=_maybe_sent(exc)))
            raise
        # A streamed body is the caller's to read; a plain one is already in memory.
        body = (
            "" if kwargs.get("stream") else response.content[:BODY_START].decode(errors="replace")
        )
        answers.append(HttpAnswer(response.status_code, response.headers.get("Retry-After"), body))
        return response

    return send_and_note


def _wrap_sendmail(sendmail: Callable[..., Any]) -> Callable[..., Any]:
    def sendmail_and_note(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        answers = _answers.get()
        if answers is None:
            return sendmail(self, *args, **kwargs)
        try:
            refused = sendmail(self, *args, **kwargs)
        except smtplib.SMTPRecipientsRefused as exc:
            answers.extend(_refusals(exc.recipients))
            raise
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, ...
            answers.append(SmtpAnswer(exc.smtp_code, _text(exc.smtp_error)))
            raise
        if isinstance(refused, dict):
            answers.extend(_refusals(refused))
        return refused

    return sendmail_and_note


def _wrap_login(login: Callable[..., Any]) -> Callable[..., Any]:
    def login_and_note(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        answers = _answers.get()
        try:
            return login(self, *args, **kwargs)
        except smtplib.SMTPResponseException as exc:  # 535: the credentials are wrong
            if answers is not None:
                answers.append(SmtpAnswer(exc.smtp_code, f"login refused: {_text(exc.smtp_error)}"))
            raise

    return login_and_note


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False when ``exc`` happened while connecting (nothing was sent); True otherwise (a read
    timeout, a connection dropped before the answer)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        # requests wraps urllib3's MaxRetryError; its reason says at which step it failed.
        # (NewConnectionError, a refused or unresolvable connection, is a ConnectTimeoutError.)
        reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
        return not isinstance(reason, ConnectTimeoutError)
    return True


def _refusals(recipients: Mapping[str, tuple[int, bytes | str]]) -> list[Answer]:
    return [
        SmtpAnswer(code, f"{_text(reply)} ({address})")
        for address, (code, reply) in recipients.items()
    ]


def _text(reply: bytes | str) -> str:
    return (reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)).strip()


# --------------------------------------------------------------------------------------------
# Classifying what was answered, without I/O


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a failed send should be retried: ``reason`` is the service's own words when known."""

    reason: str
    permanent: bool = False
    retry_after: float | None = None
    uncertain: bool = False
    """A request got no answer after it may have reached the service."""


def classify(answers: Sequence[Answer], fallback: str, now: datetime | None = None) -> Verdict:
    """What the failed send's ``answers`` mean. ``fallback`` is Apprise's reason: the whole
    reason when the answers say nothing (none captured, or only successful ones), else appended
    to the service's own message.

    Permanent only when every failed answer is (see the module docstring); the Retry-After is
    the longest any answer asked for, clamped to :data:`MAX_RETRY_AFTER`.
    """
    verdicts = [v for answer in answers if (v := _judge(answer, now)) is not None]
    if not verdicts:
        return Verdict(fallback)
    permanent = all(v.permanent for v in verdicts)
    waits = [v.retry_after for v in verdicts if v.retry_after is not None]
    chosen = next((v for v in verdicts if v.permanent == permanent), verdicts[0])
    # The service's words first (they say what to fix), then Apprise's (they name the service).
    reason = f"{chosen.reason}; {fallback}" if fallback else chosen.reason
    return Verdict(
        reason,
        permanent=permanent,
        retry_after=max(waits) if waits else None,
        uncertain=any(v.uncertain for v in verdicts),
    )


def _judge(answer: Answer, now: datetime | None) -> Verdict | None:
    if isinstance(answer, SmtpAnswer):
        if answer.code < 400:
            return None
        return Verdict(f"SMTP {answer.code} {answer.message}".strip(), permanent=answer.code >= 500)
    if answer.status is None:
        return Verdict(
            f"no answer ({answer.error or 'request failed'})", uncertain=answer.maybe_sent
        )
    status = answer.status
    if status < 400:
        return None
    payload = _json(answer.body)
    said = _service_message(payload, answer.body)
    reason = f"{said} (HTTP {status})" if said else f"HTTP {status}"
    if status in (429, 503):
        wait = parse_retry_after(answer.retry_after, now)
        if wait is None:
            wait = _telegram_retry_after(payload)
        return Verdict(reason, retry_after=wait)
    return Verdict(reason, permanent=400 <= status < 500 and status not in TRANSIENT_4XX)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), clamped to
    [0, :data:`MAX_RETRY_AFTER`]; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _telegram_retry_after(payload: Any) -> float | None:
    """Telegram's ``{"parameters": {"retry_after": N}}`` (it may omit the header)."""
    if isinstance(payload, dict) and isinstance(params := payload.get("parameters"), dict):
        value = params.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    return None


def _service_message(payload: Any, body: str) -> str:
    """The service's own error text: Telegram's ``description``, a JSON ``error`` or
    ``message``, else the body's first line (Slack answers in plain text: ``invalid_token``)."""
    if isinstance(payload, dict):
        for key in ("description", "error", "message"):
            if isinstance(value := payload.get(key), str) and value.strip():
                return value.strip()[:200]
    first = body.strip().splitlines()[0] if body.strip() else ""
    return first[:200]
