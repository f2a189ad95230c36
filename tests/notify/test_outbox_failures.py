"""How the outbox treats a failure's kind: permanent, Retry-After, configured backoff, leases, and
the counting of possible duplicates. Real SQLite and PostgreSQL, fake channels, a fake clock."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest

from monitor.errors import DeliveryError
from monitor.notify.outbox import DeliveryReport, Outbox
from monitor.notify.testing import FakeChannel
from monitor.store import outbox as store
from monitor.store.db import Database
from tests.notify.conftest import OUTBOX_T0 as T0
from tests.notify.conftest import Clock, delivery_rows, insert_deliveries


def insert(db: Database, channel: str, count: int = 1, at: datetime = T0) -> list[int]:
    return insert_deliveries(db, channel, count, at)


rows = delivery_rows


async def test_permanent_failure_is_dead_at_once_with_the_services_message(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A permanent failure dead-letters the row on its first attempt, long before retry_for."""
    [row_id] = insert(db, "tg")
    tg = FakeChannel("tg")
    tg.fail(DeliveryError("channel 'tg': Bad Request: chat not found (HTTP 400)", permanent=True))
    outbox = Outbox(db, {"tg": tg}, clock=Clock())

    assert await outbox.deliver_due() == DeliveryReport(dead=1)

    row = rows(db)[row_id]
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == "channel 'tg': Bad Request: chat not found (HTTP 400)"
    assert any(r.levelno == logging.ERROR and "permanent" in r.getMessage() for r in caplog.records)


async def test_retry_after_moves_the_row_and_the_rest_of_the_pass(db: Database) -> None:
    """A Retry-After longer than the backoff sets the next attempt for the row and the channel's
    other due rows."""
    first, *rest = insert(db, "team", 3)
    team = FakeChannel("team")
    team.fail(DeliveryError("channel 'team': rate_limited (HTTP 429)", retry_after=600))
    outbox = Outbox(db, {"team": team}, clock=Clock())

    assert await outbox.deliver_due() == DeliveryReport(failed=1, deferred=2)

    every = rows(db)
    assert every[first].next_attempt_at == T0 + timedelta(seconds=600)
    assert [every[row_id].next_attempt_at for row_id in rest] == [T0 + timedelta(seconds=600)] * 2
    assert [every[row_id].attempts for row_id in rest] == [0, 0]


async def test_short_retry_after_does_not_shorten_the_backoff(db: Database) -> None:
    """The next attempt is at least the backoff even when the service asks for less."""
    [row_id] = insert(db, "team")
    team = FakeChannel("team")
    team.fail(DeliveryError("channel 'team': HTTP 503", retry_after=1))
    outbox = Outbox(db, {"team": team}, clock=Clock())

    await outbox.deliver_due()

    due = rows(db)[row_id].next_attempt_at
    assert due is not None
    assert T0 + timedelta(seconds=27) <= due <= T0 + timedelta(seconds=33)


async def test_backoff_follows_retry_first_and_retry_max(db: Database) -> None:
    """The configured first wait doubles with each failure up to the configured maximum."""
    [row_id] = insert(db, "desk")
    desk = FakeChannel("desk")
    desk.fail()
    clock = Clock()
    outbox = Outbox(
        db,
        {"desk": desk},
        clock=clock,
        retry_first=timedelta(seconds=5),
        retry_max=timedelta(seconds=12),
    )
    delays = []
    for _ in range(4):
        await outbox.deliver_due()
        due = rows(db)[row_id].next_attempt_at
        assert due is not None
        delays.append((due - clock.now).total_seconds())
        clock.now = due

    for delay, base in zip(delays, [5, 10, 12, 12], strict=True):
        assert base * 0.9 <= delay <= base * 1.1


async def test_clean_sends_count_one_claim_and_no_redelivery(db: Database) -> None:
    """A row sent on its first claim counts one claim, no redelivery, and is not in flight."""
    ids = insert(db, "desk", 2)
    outbox = Outbox(db, {"desk": FakeChannel("desk")}, clock=Clock())

    assert await outbox.deliver_due() == DeliveryReport(sent=2)

    for row_id in ids:
        row = rows(db)[row_id]
        assert (row.claims, row.redeliveries, row.in_flight) == (1, 0, False)
    with db.session() as session:
        assert store.redelivery_total(session) == 0


async def test_taking_over_a_claim_without_outcome_counts_a_redelivery(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A row whose worker died mid-send is sent after the lease and counted as a possible
    duplicate, logged at WARNING; the total is exposed for the metrics."""
    [row_id, _other] = insert(db, "desk", 2)
    lease = timedelta(seconds=10)
    with db.session() as session:
        # What a worker does before it sends; it then dies without recording an outcome.
        group = store.claim_group(session, "desk", due_by=T0, lease_until=T0 + lease, burst=20)
        assert group is not None
        assert store.open_claims(session, [delivery for delivery, _m, _a in group.rows]) == []
    desk = FakeChannel("desk")
    clock = Clock(T0 + lease)
    outbox = Outbox(db, {"desk": desk}, clock=clock, lease=lease)

    assert await outbox.deliver_due() == DeliveryReport(sent=2)

    row = rows(db)[row_id]
    assert (row.status, row.claims, row.redeliveries, row.in_flight) == ("sent", 2, 1, False)
    with db.session() as session:
        assert store.redelivery_total(session) == 1
    [warning] = [r for r in caplog.records if "possible duplicate" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert str(row_id) in warning.getMessage()


async def test_send_cancelled_at_shutdown_counts_a_redelivery_when_sent_again(
    db: Database,
) -> None:
    """A send cut off at shutdown is released for the next worker, which counts it as a possible
    duplicate (the cut-off send may have reached the service)."""
    [row_id] = insert(db, "desk")
    slow = FakeChannel("desk")
    slow.block()
    stop = asyncio.Event()
    task = asyncio.create_task(Outbox(db, {"desk": slow}).run(stop, grace=0.1))
    await asyncio.wait_for(slow.entered.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert rows(db)[row_id].in_flight

    assert await Outbox(db, {"desk": FakeChannel("desk")}).deliver_due() == DeliveryReport(sent=1)
    assert rows(db)[row_id].redeliveries == 1


async def test_lease_is_configurable_and_bounds_the_send(db: Database) -> None:
    """A row is leased for the configured time, a send is cut off at half of it, and the retry
    of a cut-off send counts as a possible duplicate."""
    [row_id] = insert(db, "desk")
    hung = FakeChannel("desk")
    hung.block()
    lease = timedelta(seconds=1)
    clock = Clock()
    sending = asyncio.create_task(
        Outbox(db, {"desk": hung}, clock=clock, lease=lease).deliver_due()
    )
    try:
        await asyncio.wait_for(hung.entered.wait(), timeout=10)
        assert rows(db)[row_id].next_attempt_at == T0 + lease
        report = await asyncio.wait_for(sending, timeout=5)
    finally:
        hung.release()
    assert report == DeliveryReport(failed=1)
    row = rows(db)[row_id]
    assert row.last_error == "channel 'desk': no answer within 0.5s"
    # The cut-off send may have reached the service: its retry counts as a possible duplicate.
    assert row.in_flight
    assert row.next_attempt_at is not None
    clock.now = row.next_attempt_at
    assert await Outbox(db, {"desk": FakeChannel("desk")}, clock=clock).deliver_due() == (
        DeliveryReport(sent=1)
    )
    assert rows(db)[row_id].redeliveries == 1


async def test_uncertain_failure_counts_its_retry_as_a_possible_duplicate(db: Database) -> None:
    """A send the channel reports as uncertain (it timed out after sending) is retried, and that
    retry is counted as a possible duplicate; a plain failure's retry is not."""
    [uncertain] = insert(db, "a")
    [plain] = insert(db, "b")
    a, b = FakeChannel("a"), FakeChannel("b")
    clock = Clock()
    outbox = Outbox(db, {"a": a, "b": b}, clock=clock)
    a.fail(DeliveryError("channel 'a': no answer (ReadTimeout)", uncertain=True), times=1)
    b.fail(DeliveryError("channel 'b': no answer (ConnectionError)"), times=1)

    assert await outbox.deliver_due() == DeliveryReport(failed=2)
    assert rows(db)[uncertain].in_flight
    assert not rows(db)[plain].in_flight
    clock.now = T0 + timedelta(minutes=5)
    assert await outbox.deliver_due() == DeliveryReport(sent=2)

    every = rows(db)
    assert (every[uncertain].attempts, every[uncertain].redeliveries) == (2, 1)
    assert (every[plain].attempts, every[plain].redeliveries) == (2, 0)
