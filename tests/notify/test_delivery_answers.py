"""Failures as the services answer them, end to end: Apprise's own Slack, Telegram, JSON-webhook
and e-mail plugins against stand-ins on 127.0.0.1, through the outbox, on SQLite and PostgreSQL.

Every test also checks that nothing it logged (everything, at DEBUG, through our own redacting
handler, as the daemon logs) and no recorded error holds a token or password.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.notify.channels import TELEGRAM_CHAT_RATE, TELEGRAM_GROUP_RATE, Channel
from monitor.notify.outbox import Outbox
from monitor.notify.pacing import Rate
from monitor.store.db import Database
from monitor.store.tables import utcnow
from tests.notify.conftest import (
    SMTP_USER,
    SmtpServer,
    delivery_rows,
    free_port,
    insert_deliveries,
    smtp_serving,
)

WaitUntil = Callable[..., Awaitable[None]]
SLACK_TOKENS = ("T1234ABCD", "B5678EFGH", "abcdefghijklmnopqrstuvwx")
SLACK_URL = "slack://T1234ABCD/B5678EFGH/abcdefghijklmnopqrstuvwx/#desk"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_URL = f"tgram://{TELEGRAM_TOKEN}/987654321"
SMTP_PASSWORD = "smtpsecret4711"
WEBHOOK_PASSWORD = "hooksecret0815"
SECRETS = (*SLACK_TOKENS, TELEGRAM_TOKEN, SMTP_PASSWORD, WEBHOOK_PASSWORD)
QUICK = timedelta(milliseconds=50)
"""retry_first in these tests: short, so any longer wait is the service's Retry-After."""


insert = insert_deliveries
rows = delivery_rows


@pytest.fixture(autouse=True)
def no_secret_logged(monitor_log: io.StringIO) -> Iterator[io.StringIO]:
    """Everything logged during the test, at DEBUG and Apprise's DEBUG too, through our handler;
    afterwards no secret may appear in it."""
    yield monitor_log
    logged = monitor_log.getvalue()
    assert logged  # the capture works: a test that logs nothing proves nothing
    assert not [secret for secret in SECRETS if secret in logged]


def outbox_for(db: Database, *channels: Channel, **rates: list[Rate]) -> Outbox:
    """An outbox over ``channels``, each paced at its service's rates unless given in ``rates``."""
    return Outbox(
        db,
        {channel.id: channel for channel in channels},
        retry_first=QUICK,
        rates={channel.id: rates.get(channel.id, channel.rates) for channel in channels},
    )


@asynccontextmanager
async def running(outbox: Outbox) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop, idle=0.2), name="outbox")
    try:
        yield
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def all_sent(db: Database) -> bool:
    return all(row.status == "sent" for row in rows(db).values())


StandIn = Any
"""tests/notify/conftest.py's stand-in server (conftest modules are not importable)."""


def answer_telegram_error(stand_in: StandIn, status: int, description: str) -> None:
    body = {"ok": False, "error_code": status, "description": description}
    stand_in.answer_next(status, json.dumps(body), content_type="application/json")


# --------------------------------------------------------------------------------------------
# Retry-After


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_slack_429_retry_after_is_honoured_and_nothing_dropped(
    db: Database, slack_server: StandIn, wait_until: WaitUntil, form: str
) -> None:
    """Slack answering 429 with Retry-After (seconds or an HTTP date) is retried no earlier than
    asked, and every alert is then sent once."""
    ids = insert(db, "team", 2)
    later = datetime.now(UTC) + timedelta(seconds=3)  # an HTTP date drops the fraction
    header = "2" if form == "seconds" else format_datetime(later, usegmt=True)
    slack_server.answer_next(429, "rate_limited", {"Retry-After": header})
    team = Channel.from_url("team", SLACK_URL)

    async with running(outbox_for(db, team)):
        await wait_until(lambda: all_sent(db), timeout=20)

    # The backoff alone would retry after 50 ms.
    assert slack_server.times[1] - slack_server.times[0] >= 1.9
    assert len(slack_server.requests) == 3  # the refused post, then each alert once
    every = rows(db)
    assert sorted(every[row_id].attempts for row_id in ids) == [1, 2]
    assert all(every[row_id].sent_at is not None for row_id in ids)


async def test_503_then_200_is_retried_and_sent_once(
    db: Database, webhook_server: tuple[StandIn, str], wait_until: WaitUntil
) -> None:
    """A webhook answering 503 once is retried and the alert delivered exactly once."""
    stand_in, url = webhook_server
    [row_id] = insert(db, "hook")
    stand_in.answer_next(503, "down for maintenance")
    hook = Channel.from_url("hook", url.replace("json://", f"json://user:{WEBHOOK_PASSWORD}@"))

    async with running(outbox_for(db, hook)):
        await wait_until(lambda: all_sent(db), timeout=10)

    row = rows(db)[row_id]
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(stand_in.requests) == 2
    assert stand_in.requests[0][1] == stand_in.requests[1][1]


async def test_503_failure_records_the_services_message(
    db: Database, webhook_server: tuple[StandIn, str]
) -> None:
    """A 503 leaves the row pending with the status and the service's words in its reason."""
    stand_in, url = webhook_server
    [row_id] = insert(db, "hook")
    stand_in.answer_next(503, "down for maintenance", {"Retry-After": "120"})
    hook = Channel.from_url("hook", url)
    before = utcnow()

    await outbox_for(db, hook).deliver_due()

    row = rows(db)[row_id]
    assert row.status == "pending"
    assert row.last_error is not None
    assert row.last_error.startswith("channel 'hook': down for maintenance (HTTP 503)")
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=120)


# --------------------------------------------------------------------------------------------
# Permanent failures


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (400, "Bad Request: chat not found"),
        (401, "Unauthorized"),
        (403, "Forbidden: bot was blocked by the user"),
    ],
)
async def test_telegram_refusal_is_dead_at_once_with_its_message(
    db: Database, telegram_server: StandIn, status: int, description: str
) -> None:
    """Telegram's 400 "chat not found", 401 or 403 dead-letters the delivery on its first attempt
    with Telegram's own description."""
    [row_id, other] = insert(db, "tg", 2)
    answer_telegram_error(telegram_server, status, description)
    tg = Channel.from_url("tg", TELEGRAM_URL)

    await outbox_for(db, tg, tg=[]).deliver_due()

    row = rows(db)[row_id]
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error is not None
    assert row.last_error.startswith(f"channel 'tg': {description} (HTTP {status})")
    assert TELEGRAM_TOKEN not in row.last_error
    # One dead chat is no reason to hold the channel's other alerts.
    assert rows(db)[other].status == "sent"


async def test_smtp_recipient_refused_is_permanent_and_4xx_transient(
    db: Database, smtp_refusing: SmtpRefusing
) -> None:
    """A 550 to RCPT TO dead-letters the delivery with the server's reply; a 451 is retried."""
    mail = Channel.from_url(
        "mail",
        f"mailto://user:{SMTP_PASSWORD}@127.0.0.1:{smtp_refusing.port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure",
    )
    [dead] = insert(db, "mail")
    smtp_refusing.reply = "550 5.1.1 <desk@example.org>: no such user"
    await outbox_for(db, mail).deliver_due()
    [later] = insert(db, "mail")
    smtp_refusing.reply = "451 4.3.0 try again later"
    await outbox_for(db, mail).deliver_due()

    every = rows(db)
    assert every[dead].status == "dead"
    assert "SMTP 550 5.1.1 <desk@example.org>: no such user" in str(every[dead].last_error)
    assert every[later].status == "pending"
    assert "SMTP 451" in str(every[later].last_error)


async def test_smtp_login_refused_is_permanent(db: Database, smtp_server: SmtpServer) -> None:
    """Wrong SMTP credentials (535) dead-letter the delivery at once, saying so, no password."""
    smtp_server.accept_login = False
    mail = Channel.from_url(
        "mail",
        f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{smtp_server.port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure",
    )
    [row_id] = insert(db, "mail")
    await outbox_for(db, mail).deliver_due()
    row = rows(db)[row_id]
    assert (row.status, row.attempts) == ("dead", 1)
    assert "SMTP 535" in str(row.last_error)
    assert "login refused" in str(row.last_error)
    assert SMTP_PASSWORD not in str(row.last_error)
    assert smtp_server.messages == []


# --------------------------------------------------------------------------------------------
# Sends that may or may not have arrived


async def test_read_timeout_is_uncertain_and_a_refused_connection_is_not(
    webhook_server: tuple[StandIn, str], make_alert: Callable[..., Alert]
) -> None:
    """A webhook that takes the request and never answers may have the alert: the failure is
    uncertain (its retry is counted as a possible duplicate); a refused connection is not."""
    stand_in, url = webhook_server
    stand_in.hang = True
    hanging = Channel.from_url("hook", f"{url}?rto=0.5")
    with pytest.raises(DeliveryError) as caught:
        await hanging.send(make_alert())
    assert caught.value.uncertain
    assert not caught.value.permanent
    assert "ReadTimeout" in str(caught.value)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = Channel.from_url("hook", f"json://127.0.0.1:{closed}/hook")
    with pytest.raises(DeliveryError) as caught:
        await refused.send(make_alert())
    assert not caught.value.uncertain
    assert not caught.value.permanent


# --------------------------------------------------------------------------------------------
# Pacing


async def test_paced_slack_channel_does_not_delay_the_email_channel(
    db: Database, slack_server: StandIn, smtp_refusing: SmtpRefusing, wait_until: WaitUntil
) -> None:
    """While a Slack channel waits for its next token, the e-mail channel sends everything."""
    team = Channel.from_url("team", SLACK_URL)
    mail = Channel.from_url(
        "mail",
        f"mailto://user:{SMTP_PASSWORD}@127.0.0.1:{smtp_refusing.port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure",
    )
    insert(db, "team", 3)
    mail_ids = insert(db, "mail", 3)

    async with running(outbox_for(db, team, mail, team=[Rate(1, 60.0)])):
        await wait_until(lambda: len(smtp_refusing.messages) == 3, timeout=10)
        assert len(slack_server.requests) == 1

    assert all(rows(db)[row_id].status == "sent" for row_id in mail_ids)


async def test_telegram_chat_is_paced_at_one_message_per_second(
    db: Database, telegram_server: StandIn, wait_until: WaitUntil
) -> None:
    """Telegram alerts to one chat go out at least a second apart (Apprise alone would not wait)."""
    tg = Channel.from_url("tg", TELEGRAM_URL)
    assert tg.rates == (TELEGRAM_CHAT_RATE,)
    insert(db, "tg", 3)

    async with running(outbox_for(db, tg)):
        await wait_until(lambda: all_sent(db), timeout=10)

    times = telegram_server.times
    assert len(times) == 3
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.95


def test_telegram_group_chat_is_also_paced_per_minute() -> None:
    """A negative chat id is a group: 20 messages a minute on top of one a second."""
    group = Channel.from_url("tg", f"tgram://{TELEGRAM_TOKEN}/-1001234567890")
    assert group.rates == (TELEGRAM_CHAT_RATE, TELEGRAM_GROUP_RATE)
    assert Channel.from_url("hook", "json://127.0.0.1/hook").rates == ()


# --------------------------------------------------------------------------------------------
# An SMTP server that refuses recipients on demand


class SmtpRefusing:
    """aiosmtpd handler: accepts any login; answers RCPT TO with ``reply`` (250 by default)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reply = "250 OK"
        self.messages: list[bytes] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_refusing() -> Iterator[SmtpRefusing]:
    """A real SMTP server on 127.0.0.1 whose answer to RCPT TO the test sets."""
    handler = SmtpRefusing(free_port())
    with smtp_serving(handler, handler.port):
        yield handler
