"""Channels end to end: Apprise's own plugins delivering to real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import logging
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import apprise
import pytest

from monitor.errors import DeliveryError
from monitor.models import Alert, Outlet
from monitor.notify.channels import Channel, ChannelErrors, build_channels, default_asset
from monitor.notify.render import Format

AlertFactory = Callable[..., Alert]

SMTP_USER = "user"
SMTP_PASSWORD = "secretpass123"
SLACK_TOKENS = ("T1234ABCD", "B5678EFGH", "abcdefghijklmnopqrstuvwx")
SLACK_URL = "slack://T1234ABCD/B5678EFGH/abcdefghijklmnopqrstuvwx/#desk"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_URL = f"tgram://{TELEGRAM_TOKEN}/987654321"
HOSTILE_TITLE = '<!channel> <script>alert(1)</script> "><img onerror=x> *bold* Kazakhstan'


def _mail_url(port: int, password: str = SMTP_PASSWORD) -> str:
    return (
        f"mailto://{SMTP_USER}:{password}@127.0.0.1:{port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure"
    )


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every record, Apprise's DEBUG ones included (they carry URLs and tokens)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    return caplog


def _apprise_text(caplog: pytest.LogCaptureFixture) -> str:
    """What Apprise itself logged (redacted at the source, whichever handler reads it)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("apprise"))


# --------------------------------------------------------------------------------------------
# building channels


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("console://", Format.TEXT),
        (SLACK_URL, Format.MARKDOWN),
        (SLACK_URL + "?format=text", Format.TEXT),
        (TELEGRAM_URL, Format.HTML),
        (_mail_url(2525), Format.HTML),
    ],
)
def test_channel_format_is_the_services_own(url: str, fmt: Format) -> None:
    """A channel renders in the format Apprise resolves for its service (or its ?format=)."""
    assert Channel.from_url("c", url).format is fmt


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        (SLACK_URL, SLACK_TOKENS),
        (TELEGRAM_URL, (TELEGRAM_TOKEN,)),
        (_mail_url(2525), (SMTP_PASSWORD,)),
    ],
)
def test_masked_url_hides_the_secrets(url: str, secrets: tuple[str, ...]) -> None:
    """masked_url is Apprise's privacy URL: safe to log, no token or password in it."""
    channel = Channel.from_url("c", url)
    assert channel.masked_url.split("://")[0] == url.split("://", maxsplit=1)[0]
    assert not any(secret in channel.masked_url for secret in secrets)
    assert not any(secret in repr(channel) for secret in secrets)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("notaschema://x", "unknown schema 'notaschema'"),
        ("mailto://", "Invalid ~From~ email"),
        ("no-schema-at-all", "no schema:// prefix"),
        ("tgram://abc", "cannot parse"),
    ],
)
def test_invalid_url_is_a_value_error_naming_the_channel(url: str, reason: str) -> None:
    """An unusable URL raises ValueError with the channel id and Apprise's reason."""
    with pytest.raises(ValueError, match="not a valid Apprise URL") as caught:
        Channel.from_url("alerts-desk", url)
    message = str(caught.value)
    assert message.startswith("channel 'alerts-desk': ")
    assert reason in message


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("mailto://user:supersecret99@127.0.0.1?mode=bogus", "supersecret99"),
        ("slack://T1234ABCD/B5678EFGH/bad!token!value99", "bad!token!value99"),
        ("notaschema://user:supersecret98@host/tokenvalue98", "tokenvalue98"),
        ("slack://T1234ABCD/B5678EFGH", "T1234ABCD"),
    ],
)
def test_invalid_url_error_never_contains_its_secrets(
    url: str, secret: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Neither the ValueError nor anything logged while loading shows the URL's secret."""
    with pytest.raises(ValueError, match="channel 'desk'") as caught:
        Channel.from_url("desk", url)
    assert secret not in str(caught.value)
    assert url not in str(caught.value)
    assert secret not in debug_logs.text


def test_build_channels_reports_every_bad_channel() -> None:
    """All failing channels are reported at once, by id; good ones are not mentioned."""
    with pytest.raises(ChannelErrors) as caught:
        build_channels({"ok": "console://", "bad": "notaschema://x", "empty": "mailto://"})
    assert set(caught.value.errors) == {"bad", "empty"}
    assert "channel 'bad'" in str(caught.value)
    assert "channel 'empty'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_build_channels_returns_each_channel_by_id() -> None:
    """Good specs give one channel per id."""
    channels = build_channels({"screen": "console://", "team": SLACK_URL})
    assert {cid: c.id for cid, c in channels.items()} == {"screen": "screen", "team": "team"}


# --------------------------------------------------------------------------------------------
# console


async def test_console_prints_the_alert_to_stdout(
    make_alert: AlertFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """console:// prints the title line, then the text body, to standard output."""
    channel = Channel.from_url("screen", "console://")
    await channel.send(make_alert())
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "[CRITICAL] Orders to use lethal force against protesters: "
        "Kazakhstan orders to shoot protesters without warning"
    )
    assert lines[1] == "Severity: CRITICAL"
    assert "security forces to *shoot* to kill *without warning*" in out


# --------------------------------------------------------------------------------------------
# e-mail


def _parts(raw: bytes) -> dict[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    parts: dict[str, str] = {"subject": str(message["Subject"])}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts[part.get_content_type()] = part.get_content()
    return parts


async def test_email_has_text_and_html_parts_with_the_alert(
    make_alert: AlertFactory,
    smtp_server: Any,
    wait_until: Any,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """The e-mail carries text/plain and text/html parts, both with hits and rule, HTML escaped."""
    channel = Channel.from_url("mail", _mail_url(smtp_server.port))
    await channel.send(make_alert(title="<script>alert(1)</script> Kazakhstan orders"))
    await wait_until(lambda: len(smtp_server.messages) == 1, timeout=5)

    parts = _parts(smtp_server.messages[0])
    assert parts["subject"].startswith("[CRITICAL] Orders to use lethal force against protesters")
    plain, rich = parts["text/plain"], parts["text/html"]
    for part in (plain, rich):
        assert "shoot" in part
        assert "without warning" in part
        assert "Orders to use lethal force against protesters" in part
    assert "<b>shoot</b>" in rich
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rich
    assert "<script>" not in rich
    assert SMTP_PASSWORD not in debug_logs.text


async def test_email_refused_is_a_delivery_error_without_the_password(
    make_alert: AlertFactory, smtp_server: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A server that refuses the login gives DeliveryError with the channel id and no password."""
    smtp_server.accept_login = False
    channel = Channel.from_url("mail", _mail_url(smtp_server.port))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    message = str(caught.value)
    assert message.startswith("channel 'mail': ")
    assert "127.0.0.1" in message  # Apprise's reason names the server it could not submit to
    assert SMTP_PASSWORD not in message
    assert SMTP_PASSWORD not in debug_logs.text
    assert smtp_server.messages == []


# --------------------------------------------------------------------------------------------
# Slack


async def test_slack_payload_has_the_alert_and_no_live_markup(
    make_alert: AlertFactory,
    slack_server: Any,
    debug_logs: pytest.LogCaptureFixture,
    monitor_log: io.StringIO,
) -> None:
    """Slack gets rule and title, the hit in bold, and no <!channel> or *bold* from the article."""
    channel = Channel.from_url("team", SLACK_URL)
    await channel.send(make_alert(title=HOSTILE_TITLE))

    [(path, payload)] = slack_server.requests
    assert path == "/services/T1234ABCD/B5678EFGH/abcdefghijklmnopqrstuvwx"
    assert payload["mrkdwn"] is True
    attachment = payload["attachments"][0]
    assert attachment["title"].startswith(
        "[CRITICAL] Orders to use lethal force against protesters: "
    )
    assert "&lt;!channel&gt;" in attachment["title"]
    text = attachment["text"]
    assert "Orders to use lethal force against protesters (lethal-force)" in text
    assert "&lt;!channel&gt;" in text
    assert "&lt;script&gt;" in text
    assert "*shoot*" in text
    assert "*without warning*" in text
    assert "*bold*" not in text
    assert "<!channel>" not in json.dumps(payload)
    # Apprise logs the webhook URL and payload at DEBUG, urllib3 the request path: the tokens
    # are redacted in Apprise's records for every handler, and in everything our handler writes.
    assert "Slack POST URL" in _apprise_text(debug_logs)
    assert "Slack POST URL" in monitor_log.getvalue()
    for text in (_apprise_text(debug_logs), monitor_log.getvalue()):
        assert not any(token in text for token in SLACK_TOKENS)


async def test_slack_text_format_is_escaped_by_apprise(
    make_alert: AlertFactory, slack_server: Any
) -> None:
    """With ?format=text, Slack gets plain text (mrkdwn off) and Apprise's own escaping."""
    channel = Channel.from_url("team", SLACK_URL + "?format=text")
    await channel.send(make_alert(title=HOSTILE_TITLE))
    [(_path, payload)] = slack_server.requests
    assert payload["mrkdwn"] is False
    assert "&lt;!channel&gt;" in payload["attachments"][0]["text"]
    assert "<!channel>" not in json.dumps(payload)


async def test_slack_server_error_is_a_delivery_error_without_tokens(
    make_alert: AlertFactory, slack_server: Any, monitor_log: io.StringIO
) -> None:
    """A 500 from Slack gives DeliveryError with the channel id and the reason, and no token."""
    slack_server.status, slack_server.body = 500, "internal_error"
    channel = Channel.from_url("team", SLACK_URL)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(make_alert())
    message = str(caught.value)
    assert message.startswith("channel 'team': ")
    assert "Slack" in message
    assert "500" in message
    assert not any(token in message for token in SLACK_TOKENS)
    assert "Failed to send to Slack" in monitor_log.getvalue()
    assert not any(token in monitor_log.getvalue() for token in SLACK_TOKENS)


# --------------------------------------------------------------------------------------------
# Telegram


async def test_telegram_gets_escaped_html(
    make_alert: AlertFactory, telegram_server: Any, monitor_log: io.StringIO
) -> None:
    """Telegram gets parse_mode HTML, the title in the body, article text escaped, hits in <b>."""
    channel = Channel.from_url("phone", TELEGRAM_URL)
    await channel.send(make_alert(title=HOSTILE_TITLE))

    [(path, payload)] = telegram_server.requests
    assert path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert str(payload["chat_id"]) == "987654321"
    assert payload["parse_mode"] == "HTML"
    text = payload["text"]
    assert text.startswith("<b>[CRITICAL] Orders to use lethal force against protesters: ")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;!channel&gt;" in text
    assert "&gt;&lt;img onerror=x&gt;" in text
    assert "<b>shoot</b>" in text
    assert "<script>" not in text
    assert "<img" not in text
    assert "Telegram POST URL" in monitor_log.getvalue()
    assert TELEGRAM_TOKEN.split(":")[1] not in monitor_log.getvalue()


async def test_a_message_over_telegrams_limit_is_sent_as_plain_text_cut_to_fit(
    make_alert: AlertFactory, telegram_server: Any
) -> None:
    """Telegram takes 4,096 characters (UTF-16 units): a longer message (an outlet list, a
    title of emoji) is sent as plain text cut to fit with "…", not refused; a short one keeps
    its HTML."""
    channel = Channel.from_url("phone", TELEGRAM_URL)
    outlets = tuple(
        Outlet(source_id=f"outlet-{n}", title="\U0001f600" * 300, link=None, published=None)
        for n in range(40)
    )
    await channel.send(make_alert(outlets=outlets))
    await channel.send(make_alert())

    [(_, long), (_, short)] = telegram_server.requests
    text = long["text"]
    assert len(text.encode("utf-16-le")) // 2 <= 4096
    assert text.endswith("…")
    assert text.startswith("[CRITICAL] Orders to use lethal force against protesters: ")
    assert "<b>" not in text
    assert short["parse_mode"] == "HTML"
    assert "<b>shoot</b>" in short["text"]


async def test_telegram_error_description_is_the_reason(
    make_alert: AlertFactory, telegram_server: Any
) -> None:
    """A 400 "chat not found" from Telegram becomes the DeliveryError's reason."""
    telegram_server.status = 400
    telegram_server.body = json.dumps({"ok": False, "description": "Bad Request: chat not found"})
    channel = Channel.from_url("phone", TELEGRAM_URL)
    with pytest.raises(DeliveryError, match="chat not found") as caught:
        await channel.send(make_alert())
    assert str(caught.value).startswith("channel 'phone': ")
    assert TELEGRAM_TOKEN.split(":")[1] not in str(caught.value)


# --------------------------------------------------------------------------------------------
# failure reasons


async def test_concurrent_failures_keep_their_own_reasons(
    make_alert: AlertFactory, slack_server: Any, telegram_server: Any
) -> None:
    """Channels failing at the same time each report their own service's reason, not another's."""
    slack_server.status = 500
    telegram_server.status = 400
    telegram_server.body = json.dumps({"ok": False, "description": "Bad Request: chat not found"})
    slack = Channel.from_url("team", SLACK_URL)
    telegram = Channel.from_url("phone", TELEGRAM_URL)
    slack_error, telegram_error = await asyncio.gather(
        slack.send(make_alert()), telegram.send(make_alert()), return_exceptions=True
    )
    assert isinstance(slack_error, DeliveryError)
    assert isinstance(telegram_error, DeliveryError)
    assert str(slack_error).startswith("channel 'team': ")
    assert "Slack" in str(slack_error)
    assert "chat not found" not in str(slack_error)
    assert str(telegram_error).startswith("channel 'phone': ")
    assert "chat not found" in str(telegram_error)
    assert "Slack" not in str(telegram_error)


async def test_hung_target_is_a_timeout(make_alert: AlertFactory, slack_server: Any) -> None:
    """A target that accepts the request and never answers fails with a timeout, not a hang."""
    slack_server.hang = True
    channel = Channel.from_url("team", SLACK_URL, asset=default_asset(service_timeout=0.3))
    with pytest.raises(DeliveryError, match="timed out") as caught:
        await asyncio.wait_for(channel.send(make_alert()), timeout=10)
    assert str(caught.value).startswith("channel 'team': ")


async def test_no_service_is_a_delivery_error(make_alert: AlertFactory) -> None:
    """An Apprise with nothing to notify (NOMATCH) is a failure, never a silent success."""
    channel = Channel("empty", "none://", Format.TEXT, apprise.Apprise())
    with pytest.raises(DeliveryError, match="matched no service"):
        await channel.send(make_alert())
