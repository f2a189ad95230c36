"""Named Apprise channels: one configured target each, an id and an Apprise URL.

Each :class:`Channel` owns its own ``apprise.Apprise`` holding exactly one service, so the outcome
of a send is that channel's outcome and nothing else's. A channel renders the alert in the format
its service takes (``resolve_format(None)``: the service's default, or the ``?format=`` of its
URL) and passes that same format as ``body_format``, so Apprise converts nothing; it only adapts
the markup to the service's dialect (Slack mrkdwn, Telegram's HTML subset), which the renderer
allows for (see :mod:`monitor.notify.render`).

Why a send failed: ``Apprise.async_notify`` returns an ``AppriseResult`` (Apprise 2.3) that holds
what the service logged at WARNING and above during *this* call. Apprise scopes that capture with
context variables copied into its worker threads, so concurrent sends on several channels each see
only their own messages. The same mechanism scopes :func:`monitor.notify.answers.capture`, which
records what the service itself answered (HTTP status, Retry-After, the body's start; an SMTP
reply code). When it has something to say, its verdict makes the :class:`DeliveryError`: the
service's message, whether the failure is permanent, and how long the service asked us to wait.
Otherwise Apprise's last message, redacted, is the reason, and the failure is transient.

Pacing: :attr:`Channel.rates` are the service's documented limits (Slack: 1 message/s per
channel, short bursts allowed; Telegram: 1/s per chat, 20/min for a group chat; none for others);
the outbox keeps each channel within them (see :mod:`monitor.notify.pacing`). Apprise's own
throttle, a sleep inside each send, is switched off for our channels.

Secrets: ``from_url`` registers the URL's secrets with :mod:`monitor.logs` before Apprise sees the
URL, so whatever Apprise logs about it afterwards is redacted, and no error message here contains
the URL: only the channel id and :attr:`Channel.masked_url`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import replace

import apprise
from apprise.plugins.base import NotifyBase
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import NotifyTelegram

from monitor.errors import DeliveryError
from monitor.logs import MASK, MIN_SECRET_LENGTH, apprise_quiet, redact, register_secrets
from monitor.models import Alert, Digest, Severity
from monitor.notify import (
    answers,
    console,  # noqa: F401 (importing it registers console://)
)
from monitor.notify.pacing import Rate
from monitor.notify.render import Format, Message, TemplateChoice, render, render_digest

__all__ = ["SLACK_RATE", "TELEGRAM_CHAT_RATE", "TELEGRAM_GROUP_RATE", "Channel", "ChannelErrors"]
__all__ += ["build_channels", "default_asset", "service_rates"]

log = logging.getLogger(__name__)

APP_URL = "https://github.com/caronc/apprise"
"""Some services link the sender's name to this URL; it must be a valid URL (Discord checks)."""

_NOTIFY_TYPES: dict[Severity, str] = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.LOW: apprise.NotifyType.INFO,
    Severity.MEDIUM: apprise.NotifyType.WARNING,
    Severity.HIGH: apprise.NotifyType.FAILURE,
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
}
"""Apprise's notify type picks the colour or icon some services show (Slack: red for failure)."""


SERVICE_TIMEOUT = 30.0
"""Seconds Apprise gives one send before it reports a timeout (its own default is 60 s).

Shorter than the outbox's limit on a send, so a hung target is reported by Apprise, naming the
service, rather than cut off from outside with no reason.
"""

SLACK_RATE = Rate(1, 1.0, burst=3)
"""Slack: "1 message per second per channel, short bursts of more than 1 allowed"."""
TELEGRAM_CHAT_RATE = Rate(1, 1.0)
"""Telegram Bot FAQ: no more than one message per second in a chat."""
TELEGRAM_GROUP_RATE = Rate(20, 60.0)
"""Telegram Bot FAQ: no more than 20 messages per minute in a group (a negative chat id)."""


def default_asset(*, service_timeout: float = SERVICE_TIMEOUT) -> apprise.AppriseAsset:
    """The Apprise settings every channel shares unless the caller passes its own."""
    return apprise.AppriseAsset(
        service_timeout=service_timeout,
        app_id="monitor",
        app_desc="monitor alerts",
        app_url=APP_URL,
        # The library never scans plugin folders unless given some (only Apprise's CLI looks in
        # ~/.apprise/plugins); say so explicitly: no code from home directories.
        plugin_paths=[],
        # Nothing written to disk (Telegram would cache its bot owner there).
        storage_mode=apprise.PersistentStoreMode.MEMORY,
        # A target that answers with a redirect could send us anywhere, internal addresses too.
        http_redirects=False,
        # Our channels come from our config, never from Apprise YAML with ${NAME} templates.
        allow_templates=False,
    )


class Channel:
    """One configured target: an id and an Apprise URL.

    ``masked_url`` is Apprise's privacy URL (secrets masked), safe for logs and the API.
    ``format`` is the markup the service takes; alerts are rendered in it. ``templates`` picks the
    templates they are rendered with (None: the shipped defaults); the app sets it once the
    rules, which may name templates of their own, are loaded.
    """

    __slots__ = (
        "_flavour",
        "_limit",
        "_service",
        "_title_in_body",
        "format",
        "id",
        "masked_url",
        "rates",
        "templates",
    )

    def __init__(
        self,
        channel_id: str,
        masked_url: str,
        fmt: Format,
        service: apprise.Apprise,
        *,
        markdown_flavour: str = "standard",
        title_in_body: bool = False,
        rates: tuple[Rate, ...] = (),
        body_limit: int = 0,
    ) -> None:
        self.id = channel_id
        self.rates = rates
        """The service's documented rate limits (empty: none known); config may override."""
        self.masked_url = masked_url
        self.format = fmt
        self._service = service
        self._flavour = markdown_flavour
        self._title_in_body = title_in_body
        self._limit = body_limit
        """The longest body the service takes (0: no limit known); see _fitted."""
        self.templates: TemplateChoice | None = None

    def __repr__(self) -> str:
        return f"Channel(id={self.id!r}, masked_url={self.masked_url!r}, format={self.format!s})"

    @classmethod
    def from_url(
        cls, channel_id: str, url: str, *, asset: apprise.AppriseAsset | None = None
    ) -> Channel:
        """The channel ``channel_id`` sending through the Apprise ``url``.

        Raises ValueError naming the channel (never the URL) when Apprise cannot use ``url``: an
        unknown schema, a URL it cannot parse, or one its service rejects (with the service's
        reason, redacted). The caller turns it into a config Problem with the file and line.
        """
        if not channel_id:
            raise ValueError("a channel needs a non-empty id")
        register_secrets(url)
        answers.install()
        asset = asset if asset is not None else default_asset()
        plugin = _load(channel_id, url, asset)
        # Apprise paces each service itself by sleeping inside the send (5.5 s between two
        # e-mails, 1.2 s between Slack posts), hidden from us and eating the send's timeout.
        # The outbox paces every channel instead (``rates``), in the open and without holding a
        # thread or a lease.
        plugin.request_rate_per_sec = 0
        service = apprise.Apprise(asset=asset)
        if not service.add(plugin):  # pragma: no cover (adding a loaded plugin always succeeds)
            raise ValueError(f"channel {channel_id!r}: not a valid Apprise URL (not accepted)")
        # Apprise's privacy URL shows custom headers (?+Authorization=...) as they are:
        # register_secrets above took the credential ones, and redact masks them.
        masked_url = redact(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]
        return cls(
            channel_id,
            masked_url,
            Format(str(plugin.resolve_format(None).value)),
            service,
            # Apprise translates CommonMark to mrkdwn for Slack; the Slack flavour is written
            # for that translator.
            markdown_flavour="slack" if isinstance(plugin, NotifySlack) else "standard",
            # Services without a title field get the title folded into the body by Apprise,
            # unescaped; render it into the body ourselves, escaped like the rest.
            title_in_body=plugin.title_maxlen <= 0,
            rates=service_rates(plugin),
            body_limit=_declared_limit(plugin),
        )

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; return once the service accepted it.

        Raises DeliveryError("channel '<id>': <reason>") when it did not: the service failed (its
        last warning, redacted, is the reason), timed out, or Apprise matched no service. Never
        retries: the outbox decides when to try again.
        """
        message = self._fitted(render, alert)
        await self._deliver(message, alert.severity, f"match {alert.match_id}")

    async def send_digest(self, digest: Digest) -> None:
        """Deliver the alerts of ``digest`` as one message; raises as :meth:`send`."""
        message = self._fitted(render_digest, digest)
        severity = max((alert.severity for alert in digest.alerts), key=lambda s: s.rank)
        await self._deliver(message, severity, f"digest of {len(digest.alerts)} alerts")

    def _fitted(self, render_as: Callable[..., Message], subject: Alert | Digest) -> Message:
        """``subject`` rendered by ``render_as`` in the channel's format; if its body comes near
        what the service takes (over nine tenths of Telegram's 4,096 characters, in UTF-16
        units), the same message as plain text, cut to fit with "…" at the end. Markup cannot be
        cut without breaking it (an unclosed tag makes Telegram refuse the whole message); plain
        text can, and loses only its end."""

        def make(fmt: Format) -> Message:
            return render_as(
                subject,
                fmt,
                markdown_flavour=self._flavour,
                title_in_body=self._title_in_body,
                templates=self.templates,
            )

        # Nine tenths of the limit: Apprise writes each line break as CRLF on the way, and the
        # "…" needs room.
        budget = self._limit * 9 // 10
        message = make(self.format)
        if not budget or _length(message.body) <= budget:
            return message
        plain = make(Format.TEXT) if self.format is not Format.TEXT else message
        # Cut in UTF-16 units; half a surrogate pair is dropped.
        units = plain.body.encode("utf-16-le", "surrogatepass")[: budget * 2]
        body = units.decode("utf-16-le", "ignore")
        return replace(plain, body=body.rstrip() + "…")

    async def _deliver(self, message: Message, severity: Severity, what: str) -> None:
        with answers.capture() as answered:
            result = await self._service.async_notify(
                body=message.body,
                title=message.title,
                notify_type=_NOTIFY_TYPES[severity],
                body_format=apprise.NotifyFormat(message.format.value),
                log_level=logging.WARNING,
            )
        with result:  # releases any log storage the result holds
            if result.status == apprise.AppriseResultStatus.SUCCESS:
                log.debug("sent %s", what, extra={"channel": self.id, "stage": "deliver"})
                return
            reason = _failure_reason(result)
        if result.status == apprise.AppriseResultStatus.NOMATCH:
            raise DeliveryError(f"channel {self.id!r}: {reason}")
        # A copy: a send Apprise abandoned on timeout may still append from its thread.
        verdict = answers.classify(list(answered), reason)
        raise DeliveryError(
            f"channel {self.id!r}: {redact(verdict.reason)}",
            retry_after=verdict.retry_after,
            permanent=verdict.permanent,
            # Apprise gave up waiting, but the service may still have taken the message.
            uncertain=verdict.uncertain or result.status == apprise.AppriseResultStatus.TIMEOUT,
        )


def _declared_limit(plugin: NotifyBase) -> int:
    """The longest body the service takes, when its plugin declares one (Telegram 4,096, Discord
    2,000, Slack 35,000); 0 for the others (e-mail, webhooks), whose 32,768 is only Apprise's
    default, not a limit of the service: an e-mail digest may be longer."""
    limit = int(plugin.body_maxlen)
    return limit if 0 < limit != NotifyBase.body_maxlen else 0


def _length(text: str) -> int:
    """``text``'s length as Telegram and Discord count it: in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class ChannelErrors(ValueError):
    """Some channels could not be built; ``errors`` maps each such channel id to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("\n".join(self.errors.values()))


def build_channels(
    specs: Mapping[str, str], *, asset: apprise.AppriseAsset | None = None
) -> dict[str, Channel]:
    """A channel for each ``id -> url`` of ``specs``.

    Raises ChannelErrors listing every channel that failed, not just the first.
    """
    asset = asset if asset is not None else default_asset()
    channels: dict[str, Channel] = {}
    errors: dict[str, str] = {}
    for channel_id, url in specs.items():
        try:
            channels[channel_id] = Channel.from_url(channel_id, url, asset=asset)
        except ValueError as exc:
            errors[channel_id] = str(exc)
    if errors:
        raise ChannelErrors(errors)
    return channels


def service_rates(plugin: apprise.NotifyBase) -> tuple[Rate, ...]:
    """The documented rate limits of ``plugin``'s service, for one message to all its targets.

    Slack: :data:`SLACK_RATE`. Telegram: :data:`TELEGRAM_CHAT_RATE`, and :data:`TELEGRAM_GROUP_RATE`
    as well when a target is a group (a negative chat id). Others: none.
    """
    if isinstance(plugin, NotifySlack):
        return (SLACK_RATE,)
    if isinstance(plugin, NotifyTelegram):
        # Apprise holds each target as (chat id, topic id); a chat id may also be a @name.
        chats = [t[0] if isinstance(t, tuple) else t for t in getattr(plugin, "targets", ())]
        if any(str(chat).startswith("-") for chat in chats):
            return (TELEGRAM_CHAT_RATE, TELEGRAM_GROUP_RATE)
        return (TELEGRAM_CHAT_RATE,)
    return ()


def _load(channel_id: str, url: str, asset: apprise.AppriseAsset) -> apprise.NotifyBase:
    """Apprise's service object for ``url``; ValueError (without the URL) when there is none."""
    try:
        with apprise_quiet():
            plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=False)
    except Exception as exc:  # noqa: BLE001 (a service's constructor may raise anything)
        # The service's own words ("An invalid Slack (second) Token ..."), which may quote parts
        # of the URL: redacted, and not chained, so no traceback carries the URL either.
        reason = _mask_authority(redact(str(exc).strip()), url) or type(exc).__name__
        raise ValueError(f"channel {channel_id!r}: not a valid Apprise URL ({reason})") from None
    if plugin is None:
        schema = url.partition("://")[0].strip().lower() if "://" in url else ""
        if not schema:
            reason = "no schema:// prefix"
        # NotificationManager is Apprise's registry of schemas (a singleton; unannotated).
        elif schema not in apprise.NotificationManager():  # type: ignore[no-untyped-call]
            reason = f"unknown schema {schema!r}"
        else:
            reason = f"Apprise cannot parse this {schema}:// URL"
        raise ValueError(f"channel {channel_id!r}: not a valid Apprise URL ({reason})")
    return plugin


def _mask_authority(text: str, url: str) -> str:
    """``text`` without the user, password or host pieces of ``url``.

    register_secrets() cannot treat hosts as secrets in general (feed hosts must stay readable in
    logs), but a broken channel URL may carry a token there (Slack's first token, a bot id), and
    its error message is shown to whoever reads the config errors.
    """
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    for piece in sorted(re.split(r"[:@]", authority), key=len, reverse=True):
        if len(piece) >= MIN_SECRET_LENGTH:
            text = text.replace(piece, MASK)
    return text


def _failure_reason(result: apprise.AppriseResult) -> str:
    status = result.status
    if status == apprise.AppriseResultStatus.NOMATCH:
        return "Apprise matched no service, so nothing was sent"
    messages = [entry.message.strip() for entry in result.logs() if entry.message.strip()]
    last = messages[-1] if messages else ""
    if status == apprise.AppriseResultStatus.TIMEOUT:
        return f"timed out ({last})" if last else "timed out"
    return last or f"the service reported {status.name.lower()} without a reason"
