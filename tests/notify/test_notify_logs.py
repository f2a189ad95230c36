"""Log setup and secret redaction: registered secrets never reach a log line, in text or JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from monitor.logs import configure_logging, redact, register_secrets
from monitor.notify.channels import Channel
from tests.notify.conftest import logging_restored

SLACK_URL = "slack://T0LOGS0AA/B0LOGS0BB/logtokenabcdefghijklmnop/#desk"
SLACK_SECRETS = ("T0LOGS0AA", "B0LOGS0BB", "logtokenabcdefghijklmnop")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging writing to a buffer; the root and apprise loggers are restored after."""
    with logging_restored():
        yield io.StringIO()


def test_registered_apprise_tokens_are_redacted() -> None:
    """Every token Apprise hides in its privacy URL is replaced by *** in any text."""
    register_secrets(SLACK_URL)
    line = "POST https://hooks.slack.com/services/T0LOGS0AA/B0LOGS0BB/logtokenabcdefghijklmnop"
    assert redact(line) == "POST https://hooks.slack.com/services/***/***/***"


def test_options_and_public_parts_are_not_secrets() -> None:
    """Host, user, addresses and options the URL shows openly stay readable in logs."""
    register_secrets(
        "mailto://mailer:pw-logs-4567@mail.example.org:2525?from=ops@example.org&mode=insecure"
    )
    text = "mailer at mail.example.org:2525 from ops@example.org, insecure mode, pw-logs-4567"
    assert (
        redact(text) == "mailer at mail.example.org:2525 from ops@example.org, insecure mode, ***"
    )


def test_telegram_bot_token_is_a_secret() -> None:
    """The bot token sits where a port would go; it is registered all the same."""
    register_secrets("tgram://555000111:AAlogsTokenValue_abcdefghijk/-1001234")
    assert "AAlogsTokenValue_abcdefghijk" not in redact(
        "https://api.telegram.org/bot555000111:AAlogsTokenValue_abcdefghijk/sendMessage"
    )


def test_unparseable_urls_register_every_long_part() -> None:
    """When Apprise cannot read a URL (a feed), password, path segments and query values count."""
    register_secrets(
        "https://reader:feedpass99@feeds.example.org/private-k3y/rss?token=tok-logs-1&x=ab"
    )
    assert redact("reader feedpass99 private-k3y tok-logs-1 ab rss") == "reader *** *** *** ab rss"


def test_ports_of_unparseable_urls_are_not_secrets() -> None:
    """A feed's port stays readable; a token where the port goes does not."""
    register_secrets("https://feeds.example.org:8443/rss/feed.xml")
    register_secrets("bogus://4242:tokenWhereAPortGoes/x")
    assert redact("port 8443, 4242, tokenWhereAPortGoes") == "port 8443, 4242, ***"


def test_short_strings_are_never_secrets() -> None:
    """Strings under four characters are left alone, so common words are never masked."""
    register_secrets("https://u:abc@example.org/x/yz?q=123")
    assert redact("abc yz 123") == "abc yz 123"


def test_apprise_debug_records_are_redacted_by_the_handler_filter(log_stream: io.StringIO) -> None:
    """A DEBUG record from the apprise logger carrying a token is written with *** instead."""
    register_secrets(SLACK_URL)
    configure_logging("DEBUG", "text", apprise_level="DEBUG", stream=log_stream)
    logging.getLogger("apprise").debug(
        "Slack POST URL: https://hooks.slack.com/services/%s (cert_verify=True)",
        "/".join(SLACK_SECRETS),
    )
    output = log_stream.getvalue()
    assert (
        "Slack POST URL: https://hooks.slack.com/services/***/***/*** (cert_verify=True)" in output
    )
    assert not any(secret in output for secret in SLACK_SECRETS)


def _fail(message: str) -> None:
    raise RuntimeError(message)


def test_records_from_any_logger_are_redacted_with_tracebacks_and_extras(
    log_stream: io.StringIO,
) -> None:
    """Message arguments, the traceback and the extra keys are all redacted, from any logger."""
    register_secrets("https://bob:hunter2hunter2@feeds.example.org/feed.xml")
    configure_logging("INFO", "text", stream=log_stream)
    try:
        _fail("auth failed for hunter2hunter2")
    except RuntimeError:
        logging.getLogger("monitor.sources").exception(
            "fetch failed with %s",
            "hunter2hunter2",
            extra={
                "source_id": "bob feed",
                "feed_url": "https://bob:hunter2hunter2@feeds.example.org/",
            },
        )
    output = log_stream.getvalue()
    assert "hunter2hunter2" not in output
    assert (
        'ERROR monitor.sources fetch failed with *** source_id="bob feed" feed_url=https://bob:***@'
        in output
    )
    assert "RuntimeError: auth failed for ***" in output


def test_text_lines_start_with_a_utc_timestamp_level_and_logger(log_stream: io.StringIO) -> None:
    """Text lines read "2026-01-01T00:00:00Z LEVEL logger message key=value"."""
    configure_logging("INFO", "text", stream=log_stream)
    logging.getLogger("monitor.test").info(
        "hello %s", "world", extra={"stage": "fetch", "other": "x"}
    )
    line = log_stream.getvalue().strip()
    timestamp, rest = line.split(" ", 1)
    assert len(timestamp) == 20
    assert timestamp.endswith("Z")
    assert timestamp[10] == "T"
    assert rest == "INFO monitor.test hello world stage=fetch"


def test_json_lines_are_valid_json_with_the_vocabulary(log_stream: io.StringIO) -> None:
    """Each JSON line parses on its own and carries message, level, logger and the extra keys."""
    register_secrets(SLACK_URL)
    configure_logging("INFO", "json", stream=log_stream)
    log = logging.getLogger("monitor.notify")
    log.warning(
        'quote " and newline\n in %s', "logtokenabcdefghijklmnop", extra={"channel": "desk"}
    )
    log.info("second", extra={"rule_id": "r1", "article_id": 3})
    first, second = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert first["message"] == 'quote " and newline\n in ***'
    assert first["level"] == "WARNING"
    assert first["logger"] == "monitor.notify"
    assert first["channel"] == "desk"
    assert first["time"].endswith("Z")
    assert second["rule_id"] == "r1"
    assert second["article_id"] == 3


def test_apprise_is_quiet_by_default(log_stream: io.StringIO) -> None:
    """Apprise's logger stays at WARNING when the root logs DEBUG."""
    configure_logging("DEBUG", "text", stream=log_stream)
    logging.getLogger("apprise").info("Loaded Slack URL")
    logging.getLogger("apprise").warning("Failed to send to Slack")
    output = log_stream.getvalue()
    assert "Failed to send to Slack" in output
    assert "Loaded Slack URL" not in output


@pytest.mark.parametrize(
    ("root", "library", "shown", "hidden"),
    [
        ("ERROR", "WARNING", "send failed", "retrying"),
        ("WARNING", "DEBUG", "retrying", "loaded url"),
        ("DEBUG", "ERROR", "send failed", "retrying"),
    ],
)
def test_apprise_logs_at_the_stricter_of_its_level_and_the_root_level(
    log_stream: io.StringIO, root: str, library: str, shown: str, hidden: str
) -> None:
    """Apprise's records are written only when both the root and the Apprise level allow them."""
    configure_logging(root, "text", apprise_level=library, stream=log_stream)
    apprise = logging.getLogger("apprise")
    apprise.info("loaded url")
    apprise.warning("retrying")
    apprise.error("send failed")
    output = log_stream.getvalue()
    assert shown in output
    assert hidden not in output


def test_configuring_twice_keeps_one_handler(log_stream: io.StringIO) -> None:
    """A second call replaces the first handler rather than doubling every line."""
    configure_logging("INFO", "text", stream=io.StringIO())
    configure_logging("INFO", "text", stream=log_stream)
    logging.getLogger("monitor.test").info("once")
    assert log_stream.getvalue().count("once") == 1


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "text"), ("INFO", "yaml")])
def test_unknown_level_or_format_is_an_error(level: str, fmt: str) -> None:
    """A typo in the log level or format is reported, not ignored."""
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt)


def test_other_handlers_see_redacted_apprise_records(caplog: pytest.LogCaptureFixture) -> None:
    """Handlers we did not install (here pytest's) also get redacted Apprise records."""
    register_secrets(SLACK_URL)
    caplog.set_level(logging.DEBUG, logger="apprise")
    logging.getLogger("apprise").debug("token %s", "logtokenabcdefghijklmnop")
    assert caplog.messages[-1] == "token ***"


def test_registering_does_not_log_the_url(caplog: pytest.LogCaptureFixture) -> None:
    """While Apprise parses a URL to learn its secrets, what it logs (the URL itself) is dropped."""
    caplog.set_level(1, logger="apprise")
    register_secrets("slack://T0QUIET0A/B0QUIET0B/quiettokenabcdefghijklm")
    assert "quiettokenabcdefghijklm" not in caplog.text


def test_credential_headers_of_a_webhook_url_are_secrets() -> None:
    """json:// and its kin set HTTP headers from ?+Name=value, which Apprise's privacy URL shows
    in full: the credential ones (Authorization, X-Api-Key) are registered, and the channel's
    masked URL hides them; other headers stay readable."""
    url = (
        "json://127.0.0.1:9/hook?+Authorization=Bearer%20hdr-secret-4242"
        "&+X-Api-Key=key-secret-4343&+Content-Type=application/json"
    )
    channel = Channel.from_url("hook", url)
    for secret in ("Bearer hdr-secret-4242", "key-secret-4343"):
        assert secret not in channel.masked_url
        assert secret not in repr(channel)
        assert redact(f"sent with {secret}") == "sent with ***"
    assert "application%2Fjson" in channel.masked_url
    assert redact("application/json") == "application/json"


def test_request_lines_of_the_http_library_are_redacted_for_every_handler() -> None:
    """urllib3 logs each request line ("POST /bot<token>/sendMessage") at DEBUG on its own
    logger: a handler that is not monitor's (a test's, an embedding program's) sees it redacted."""
    token = "555000222:AAhttpLibTokenValue_abcdefghij"
    Channel.from_url("phone", f"tgram://{token}/-1001234")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug('%s "POST /bot%s/sendMessage HTTP/1.1" 200', "https://api", token)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert seen == ['https://api "POST /bot***/sendMessage HTTP/1.1" 200']


def test_a_channel_url_apprise_cannot_parse_is_not_logged_by_apprise() -> None:
    """Apprise logs "Unparseable Telegram URL tgram://<token>" at ERROR, the token whole: while
    a channel is built, nothing Apprise logs is written."""
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with pytest.raises(ValueError, match="cannot parse this tgram"):
            Channel.from_url("phone", "tgram://unparseable-secret-5151")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    # Apprise shortens some tokens itself ("tgram://u...1"), not all: nothing of the URL at all.
    assert not [line for line in seen if "tgram://" in line or "unparseable-secret" in line]
