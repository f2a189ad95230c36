"""Outages of real targets on 127.0.0.1: an SMTP server down for ten minutes, a webhook that
hangs. The real pipeline stores the matches; the real outbox sends them through Apprise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article, Severity
from monitor.notify.channels import Channel
from monitor.notify.outbox import Outbox
from monitor.notify.policy import Policy
from monitor.pipeline import CompiledRules, Pipeline
from monitor.store.db import Database
from tests.notify.conftest import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpServer,
    free_port,
    smtp_serving,
)

RULE = Rule(id="curfew", name="Curfew", severity=Severity.HIGH, keywords=("curfew",))
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def mail_url(port: int) -> str:
    return (
        f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure"
    )


def stories(count: int) -> list[Article]:
    return [
        Article(
            title=f"Curfew in city {number}",
            body=f"A curfew was declared in city {number}. " + f"Detail {number} " * number,
            source_id="wire",
            key=f"curfew-{number}",
        )
        for number in range(count)
    ]


async def test_smtp_down_for_ten_minutes_then_everything_is_delivered_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """With the SMTP server refusing connections for ten minutes of retries, nothing is lost or
    dead; once it is back, every alert arrives, exactly once, at the next attempt."""
    clock, port = Clock(), free_port()
    flow = Pipeline(
        db,
        CompiledRules.build(RuleSet(rules=(RULE,))),
        clock=clock,
        policy=Policy(default=("mail",), story_window=None),
    )
    flow.ingest("wire", stories(3))
    outbox = Outbox(db, {"mail": Channel.from_url("mail", mail_url(port))}, clock=clock)

    while clock.now < T0 + timedelta(minutes=10):
        report = await outbox.deliver_due()
        assert report.sent == report.dead == 0
        clock.now += timedelta(seconds=30)
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records if "failed" in r.getMessage())

    server = SmtpServer(port=port)
    with smtp_serving(server, port):
        clock.now += timedelta(hours=1)  # past any backoff so far (at most 1 h)
        report = await outbox.deliver_due()
        assert (report.sent, report.failed, report.dead) == (3, 0, 0)
        clock.now += timedelta(days=1)
        assert (await outbox.deliver_due()).attempted == 0
        subjects = sorted(_subject(message) for message in server.messages)
    assert subjects == [f"[HIGH] Curfew: Curfew in city {n}" for n in range(3)]
    assert SMTP_PASSWORD not in caplog.text


def _subject(message: bytes) -> str:
    for line in message.decode("utf-8", "replace").splitlines():
        if line.lower().startswith("subject:"):
            return line.split(":", 1)[1].strip()
    return ""


async def test_a_hanging_webhook_does_not_delay_email(
    db: Database,
    webhook_server: tuple[Any, str],
    smtp_server: SmtpServer,
    wait_until: Callable[..., Awaitable[None]],
) -> None:
    """While the webhook accepts the request and never answers, the e-mail channel's alert is
    sent at once by its own worker."""
    hook, hook_url = webhook_server
    hook.hang = True
    flow = Pipeline(
        db,
        CompiledRules.build(RuleSet(rules=(RULE,))),
        policy=Policy(default=("hook", "mail"), story_window=None),
    )
    flow.ingest("wire", stories(1))
    channels = {
        "hook": Channel.from_url("hook", hook_url),
        "mail": Channel.from_url("mail", mail_url(smtp_server.port)),
    }
    stop = asyncio.Event()
    worker = asyncio.create_task(Outbox(db, channels).run(stop, grace=0.5))
    try:
        await wait_until(lambda: len(smtp_server.messages) == 1, timeout=10)
        assert hook.requests == []  # still hanging
    finally:
        stop.set()
        hook.released.set()
        await asyncio.wait_for(worker, timeout=10)
