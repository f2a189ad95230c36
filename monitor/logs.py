"""Logging setup and secret redaction.

One handler on the root logger writes every record, from monitor or from a library, as text
(``2026-01-01T00:00:00Z LEVEL logger message key=value ...``) or as one JSON object per line. The
extra keys come from a fixed vocabulary (:data:`EXTRA_KEYS`), so logs can be searched by
``source_id``, ``channel`` or ``stage`` whatever emitted them.

Secrets (channel tokens, SMTP passwords, basic-auth in feed URLs) never reach the output: whoever
loads a URL calls :func:`register_secrets`, and a :class:`RedactingFilter` on our handler replaces
every registered secret with ``***`` in the message, its arguments, the traceback and the extra
keys. Apprise logs full webhook URLs and bot tokens at DEBUG, so the same filter also sits on the
``apprise`` logger itself: then records are clean before *any* handler sees them, including
Apprise's own per-notification log capture (which our delivery errors are built from) and
handlers we did not install (pytest's caplog, an embedding application's).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qsl, quote, unquote

EXTRA_KEYS: tuple[str, ...] = (
    "source_id",
    "feed_url",
    "rule_id",
    "article_id",
    "channel",
    "stage",
    "path",
)
"""The only ``extra=`` keys the formatters write, in this order."""

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter strings are never treated as secrets: redacting "yes" or "443" would garble every log."""

APPRISE_LOGGER = "apprise"

_FORMATS = ("text", "json")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Set while register_secrets() asks Apprise to parse a URL whose secrets are not known yet: Apprise
# may log that URL in full (at TRACE/DEBUG), so records from that call are dropped, not redacted.
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("monitor_logs_quiet", default=False)


# --------------------------------------------------------------------------------------------
# Secrets


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def register_secrets(url: str) -> None:
    """Remember the secret parts of an Apprise or feed URL so :func:`redact` hides them.

    When Apprise can load the URL, a part is secret if Apprise's privacy URL
    (``url(privacy=True)``) hides it: the password, and every user, host, path or query value that
    the full URL shows but the privacy URL masks (tokens in paths, tokens as users, ``?token=``).
    When Apprise cannot load it (a feed URL, a broken channel URL), every password, path segment and
    query value is secret. Strings shorter than :data:`MIN_SECRET_LENGTH` are never registered.
    """
    if not url:
        return
    _protect_apprise_logger()
    parts = _split_url(url)
    plugin = _instantiate_quietly(url)
    found: set[str] = set()
    if plugin is None:
        found.update(parts.password)
        # After "host:" comes a port, or a token in bot-token URLs ("tgram://123:token").
        found.update(piece for piece in parts.host[1:] if not piece.isdigit())
        found.update(parts.path)
        found.update(parts.query)
    else:
        private = _privacy_forms(str(plugin.url(privacy=True)))
        full_url = str(plugin.url(privacy=False))
        full = _privacy_forms(full_url)
        found.update(value for value in parts.password if not _shown(value, private))
        for value in (*parts.user, *parts.host, *parts.path, *parts.query, *parts.fragment):
            # A value the full URL does not show either is an option Apprise consumed (mode=...),
            # not a credential it hides.
            if _shown(value, full) and not _shown(value, private):
                found.add(value)
        # Apprise may normalise a token (strip a "bot" prefix, re-encode it): take the parts of
        # its own full URL that the privacy URL hides too.
        again = _split_url(full_url)
        for value in (*again.user, *again.password, *again.host, *again.path, *again.query):
            if not _shown(value, private):
                found.add(value)
    found.update(_header_secrets(url))
    _add_secrets(found)


SECRET_NAME = re.compile(
    r"(?i)^(?:.*(?:token|secret|passw|api[-_]?key|apikey|credential|authoriz|cookie).*|"
    r"key|auth|sig|signature|pass|pwd|session|sid|hash|code)$"
)
"""Names whose values are credentials, wherever a name and a value are written in a URL: a feed
URL's query parameters as publishers hand them out (``?token=``, ``?api_key=``, a signed URL's
``?sig=``), a database URL's options (``?password=``), the HTTP headers an Apprise URL sets
(``?+Authorization=``, ``?+X-Api-Key=``). A longer word that merely holds "key" ("keyword",
"monkey") is not one."""


def _header_secrets(url: str) -> list[str]:
    """The values of the credential headers that an Apprise URL sets (``?+Authorization=...``
    in json://, xml:// and form:// URLs): Apprise's privacy URL shows them in full."""
    match = _URL_RE.match(url.strip())
    query = match["query"] if match is not None else None
    if not query:
        return []
    # parse_qsl reads a "+" as a space: "+Authorization" arrives as " Authorization".
    return [
        value
        for name, value in parse_qsl(query, keep_blank_values=False)
        if name[:1] in ("+", " ") and SECRET_NAME.match(name[1:])
    ]


def register_values(values: Iterable[str]) -> None:
    """Remember secrets that are not URLs (a feed's Authorization header, the password of a
    feed URL's user) so :func:`redact` hides them."""
    _add_secrets(set(values))


def _add_secrets(values: set[str]) -> None:
    global _pattern  # noqa: PLW0603 (one process-wide registry, swapped atomically under a lock)
    forms: set[str] = set()
    for value in values:
        for form in (value, unquote(value), quote(unquote(value), safe="")):
            if len(form) >= MIN_SECRET_LENGTH:
                forms.add(form)
    if not forms:
        return
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=lambda s: (-len(s), s))
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


class _Parts:
    """The pieces of a URL a secret can hide in, each as written (possibly percent-encoded)."""

    __slots__ = ("fragment", "host", "password", "path", "query", "user")

    def __init__(self) -> None:
        self.user: list[str] = []
        self.password: list[str] = []
        self.host: list[str] = []
        self.path: list[str] = []
        self.query: list[str] = []
        self.fragment: list[str] = []


_URL_RE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<netloc>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?$",
    re.DOTALL,
)


def _split_url(url: str) -> _Parts:
    # Not urllib.parse.urlsplit: Apprise URLs are not all valid URLs ("tgram://123:token/chat"
    # puts a token where a port goes, which urlsplit rejects when asked for the port).
    parts = _Parts()
    match = _URL_RE.match(url.strip())
    if match is None:  # pragma: no cover (the pattern matches every string)
        return parts
    netloc = match["netloc"] or ""
    path = match["path"] or ""
    if not match["scheme"]:
        # No "scheme://": there is no authority, everything is path.
        path, netloc = netloc + path, ""
    userinfo, _, hostport = netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        parts.user.append(user)
        if password:
            parts.password.append(password)
    parts.host.extend(piece for piece in hostport.split(":") if piece)
    parts.path.extend(segment for segment in path.split("/") if segment)
    parts.query.extend(
        value for _key, value in parse_qsl(match["query"] or "", keep_blank_values=False)
    )
    if match["fragment"]:
        parts.fragment.append(match["fragment"])
    return parts


def _privacy_forms(url: str) -> tuple[str, str]:
    return url, unquote(url)


def _shown(value: str, forms: tuple[str, str]) -> bool:
    decoded = unquote(value)
    return any(candidate in form for candidate in (value, decoded) for form in forms)


@contextlib.contextmanager
def apprise_quiet() -> Iterator[None]:
    """Nothing Apprise logs in this block is written: what it says of a URL it cannot parse
    ("Unparseable Telegram URL tgram://<token>") quotes the URL whole, secrets and all."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def _instantiate_quietly(url: str) -> Any:
    """Apprise's plugin for ``url``, or None; nothing Apprise logs meanwhile is written."""
    import apprise  # noqa: PLC0415 (logging setup must not pay for loading 180 plugins)

    try:
        with apprise_quiet(), warnings.catch_warnings():
            # The first lookup imports all of Apprise's plugins; see monitor.notify.console for
            # the one warning that import raises on Python 3.11-3.12.
            warnings.filterwarnings(
                "ignore", message="'imghdr' is deprecated", category=DeprecationWarning
            )
            return apprise.Apprise.instantiate(url)
    except Exception:  # noqa: BLE001 (any plugin failure means "Apprise cannot parse it")
        return None


# --------------------------------------------------------------------------------------------
# Filter and formatters


class RedactingFilter(logging.Filter):
    """Replace registered secrets in a record's message, arguments, traceback and extra keys.

    The record is edited in place (the message is rendered once and its arguments dropped), so
    every handler after this filter, ours or not, sees only the redacted text. Safe to apply twice.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _quiet.get() and record.name.partition(".")[0] == APPRISE_LOGGER:
            return False
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a malformed format string must not hide the record)
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in EXTRA_KEYS:
            value = record.__dict__.get(key)
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


_TRACEBACKS = logging.Formatter()
_APPRISE_FILTER = RedactingFilter()


_SENDING_LOGGERS = (APPRISE_LOGGER, "urllib3.connectionpool")
"""Loggers that write a channel's URL: Apprise, and the HTTP library its plugins use, which logs
each request line ("POST /bot<token>/sendMessage") at DEBUG. A logger's filter sees only what is
logged on it, so each gets its own."""


def _protect_apprise_logger() -> None:
    for name in _SENDING_LOGGERS:
        logger = logging.getLogger(name)
        if _APPRISE_FILTER not in logger.filters:
            logger.addFilter(_APPRISE_FILTER)


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _extras(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    for key in EXTRA_KEYS:
        value = record.__dict__.get(key)
        if value is not None:
            yield key, value


_BARE_VALUE = re.compile(r"[^\s\"=]+")


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00Z LEVEL logger message key=value ...``, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        for key, value in _extras(record):
            text = str(value)
            # Quote values a reader could not split on spaces unambiguously.
            line += f" {key}={text if _BARE_VALUE.fullmatch(text) else json.dumps(text)}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the extra keys, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


_OURS = "_monitor_handler"


def remove_handler() -> None:
    """Remove (and close) the handler :func:`configure_logging` installed, if any: for code that
    runs commands in-process and outlives them, such as tests."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()


def configure_logging(
    level: str = "INFO",
    fmt: str = "text",
    *,
    apprise_level: str = "WARNING",
    stream: IO[str] | None = None,
) -> None:
    """Send every log record to ``stream`` (stderr: stdout carries console alerts), redacted.

    ``level`` is the root level; ``apprise_level`` is Apprise's, WARNING by default because at
    DEBUG Apprise logs webhook URLs and tokens (redacted here, but noisy). Apprise never logs below
    the root level either: its logger gets the stricter of the two. Calling it again replaces the
    handler an earlier call installed and leaves other handlers alone.
    Raises ValueError for an unknown level or format.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (expected one of {', '.join(_FORMATS)})")
    root_level = _level(level)
    library_level = _level(apprise_level)

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _OURS, True)

    root = logging.getLogger()
    remove_handler()
    root.addHandler(handler)
    root.setLevel(root_level)

    # A record passes only its own logger's level, not its ancestors': left at WARNING under an
    # ERROR root, Apprise's warnings would still reach our handler.
    logging.getLogger(APPRISE_LOGGER).setLevel(max(root_level, library_level))
    # APScheduler logs every job run at INFO: once per source per interval is noise, not news.
    logging.getLogger("apscheduler").setLevel(max(root_level, logging.WARNING))
    # Alembic logs its dialect at INFO each time it reads a revision; monitor.store.migrate logs
    # the revisions it applies instead.
    logging.getLogger("alembic").setLevel(max(root_level, logging.WARNING))
    _protect_apprise_logger()


def _level(name: str) -> int:
    value = logging.getLevelNamesMapping().get(name.upper())
    if value is None:
        raise ValueError(f"unknown log level {name!r}")
    return value
