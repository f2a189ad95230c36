"""The outbox worker on a real SQLite file and the real PostgreSQL, with in-memory fake channels.

Passes driven by ``deliver_due`` use an injected clock; tests of ``run`` use the real clock and
wait on conditions with deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest

from monitor.errors import DeliveryError
from monitor.notify import outbox as outbox_module
from monitor.notify.outbox import LEASE, DeliveryReport, Outbox
from monitor.notify.testing import FakeChannel
from monitor.store import outbox as store
from monitor.store.db import Database
from monitor.store.tables import utcnow
from tests.notify.conftest import OUTBOX_T0 as T0
from tests.notify.conftest import Clock, delivery_rows, insert_deliveries

WaitUntil = Callable[..., Awaitable[None]]


def insert(db: Database, channel: str, count: int = 1, at: datetime = T0) -> list[int]:
    return insert_deliveries(db, channel, count, at)


rows = delivery_rows


@pytest.fixture
def other_db(db_url: str, db: Database) -> Iterator[Database]:
    """A second engine on the same database, as another process or replica would have."""
    database = Database(db_url)
    yield database
    database.dispose()


def match_ids(db: Database, delivery_ids: list[int]) -> list[int]:
    every = rows(db)
    return [every[delivery_id].match_id for delivery_id in delivery_ids]


@asynccontextmanager
async def running(outbox: Outbox, grace: float = 5.0) -> AsyncIterator[asyncio.Event]:
    """``outbox.run`` as a task for the block; stopped (and awaited) when the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop, grace=grace), name="outbox")
    try:
        yield stop
        assert not task.done(), "the outbox worker ended while it should be running"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=grace + 5)


async def test_due_rows_are_sent_in_order_and_marked_sent_once(db: Database) -> None:
    """Every due row is sent in order and marked sent; later passes never send it again."""
    ids = insert(db, "desk", 3)
    desk = FakeChannel("desk")
    clock = Clock()
    outbox = Outbox(db, {"desk": desk}, clock=clock)

    assert await outbox.deliver_due() == DeliveryReport(sent=3)
    clock.advance(timedelta(days=1))
    assert await outbox.deliver_due() == DeliveryReport()

    assert desk.sent_match_ids == match_ids(db, ids)
    for row in rows(db).values():
        assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, T0, None)


async def test_failure_records_the_reason_and_the_next_attempt_by_backoff(db: Database) -> None:
    """A failed send keeps the row pending with the reason, retried 30 s then 60 s later (±10%)."""
    [row_id] = insert(db, "desk")
    desk = FakeChannel("desk")
    desk.fail(DeliveryError("channel 'desk': HTTP 500 from the service"))
    clock = Clock()
    outbox = Outbox(db, {"desk": desk}, clock=clock)

    assert await outbox.deliver_due() == DeliveryReport(failed=1)
    row = rows(db)[row_id]
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "channel 'desk': HTTP 500 from the service"
    assert row.next_attempt_at is not None
    assert T0 + timedelta(seconds=27) <= row.next_attempt_at <= T0 + timedelta(seconds=33)

    clock.now = row.next_attempt_at
    assert await outbox.deliver_due() == DeliveryReport(failed=1)
    again = rows(db)[row_id]
    assert again.attempts == 2
    assert again.next_attempt_at is not None
    delay = again.next_attempt_at - clock.now
    assert timedelta(seconds=54) <= delay <= timedelta(seconds=66)

    desk.recover()
    clock.now = again.next_attempt_at
    assert await outbox.deliver_due() == DeliveryReport(sent=1)
    assert rows(db)[row_id].status == "sent"


async def test_failure_defers_the_rest_of_the_pass_without_an_attempt(db: Database) -> None:
    """After a failure the channel's other due rows wait for the same retry, attempts unchanged."""
    first, *rest = insert(db, "desk", 3)
    desk = FakeChannel("desk")
    desk.fail()
    outbox = Outbox(db, {"desk": desk}, clock=Clock())

    assert await outbox.deliver_due() == DeliveryReport(failed=1, deferred=2)

    assert len(desk.calls) == 1
    every = rows(db)
    assert every[first].attempts == 1
    for row_id in rest:
        assert every[row_id].attempts == 0
        assert every[row_id].status == "pending"
        assert every[row_id].next_attempt_at == every[first].next_attempt_at
        assert every[row_id].last_error == f"deferred: {every[first].last_error}"


async def test_row_failing_past_retry_for_is_dead(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A row still failing ``retry_for`` after it was created is dead-lettered, logged at ERROR."""
    [row_id] = insert(db, "desk")
    desk = FakeChannel("desk")
    desk.fail(DeliveryError("channel 'desk': 550 mailbox unavailable"))
    clock = Clock(T0 + timedelta(hours=1))
    outbox = Outbox(db, {"desk": desk}, retry_for=timedelta(hours=1), clock=clock)

    assert await outbox.deliver_due() == DeliveryReport(dead=1)

    row = rows(db)[row_id]
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == "channel 'desk': 550 mailbox unavailable"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (record.channel, record.stage) == ("desk", "deliver")  # type: ignore[attr-defined]
    desk.recover()
    clock.advance(timedelta(days=1))
    assert await outbox.deliver_due() == DeliveryReport()


async def test_unconfigured_channel_rows_go_dead_with_the_reason(db: Database) -> None:
    """Rows for a channel no longer configured are dead-lettered, saying so; others are sent."""
    gone = insert(db, "gone", 2)
    [desk_row] = insert(db, "desk")
    outbox = Outbox(db, {"desk": FakeChannel("desk")}, clock=Clock())

    assert await outbox.deliver_due() == DeliveryReport(sent=1, dead=2)

    every = rows(db)
    assert every[desk_row].status == "sent"
    for row_id in gone:
        assert (every[row_id].status, every[row_id].attempts) == ("dead", 0)
        assert every[row_id].last_error == "channel 'gone' is not configured"


async def test_running_worker_dead_letters_unconfigured_channel_rows(
    db: Database, wait_until: WaitUntil
) -> None:
    """The daemon's worker sweeps rows of unconfigured channels too, when woken."""
    outbox = Outbox(db, {"desk": FakeChannel("desk")})
    async with running(outbox):
        [row_id] = insert(db, "gone", at=utcnow())
        outbox.wake()
        await wait_until(lambda: rows(db)[row_id].status == "dead", timeout=5)
    assert rows(db)[row_id].last_error == "channel 'gone' is not configured"


async def test_unexpected_exception_in_send_is_a_recorded_failure_and_the_loop_goes_on(
    db: Database, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug raising from a send fails that row only, logged once with its traceback; the worker
    keeps delivering."""
    [broken] = insert(db, "desk", at=utcnow())
    desk = FakeChannel("desk")
    desk.fail(RuntimeError("renderer bug"), times=1)
    outbox = Outbox(db, {"desk": desk})
    async with running(outbox):
        await wait_until(lambda: rows(db)[broken].attempts == 1, timeout=5)
        [later] = insert(db, "desk", at=utcnow())
        outbox.wake()
        await wait_until(lambda: rows(db)[later].status == "sent", timeout=5)

    row = rows(db)[broken]
    assert row.status == "pending"
    assert row.last_error == "channel 'desk': unexpected error: RuntimeError('renderer bug')"
    [record] = [r for r in caplog.records if f"delivery {broken} " in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    assert record.channel == "desk"  # type: ignore[attr-defined]


async def test_a_row_whose_alert_cannot_be_built_fails_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while building an alert from its stored match is that row's recorded failure; the
    pass goes on with the channel's other rows at their next attempt."""
    [row_id] = insert(db, "desk", at=T0)
    desk = FakeChannel("desk")

    def broken(*_args: object) -> None:
        raise ValueError("stored hit from an older version")

    monkeypatch.setattr(outbox_module, "build_alert", broken)
    report = await Outbox(db, {"desk": desk}, clock=Clock()).deliver_due()
    assert (report.failed, report.sent) == (1, 0)
    row = rows(db)[row_id]
    assert row.status == "pending"
    assert "ValueError('stored hit from an older version')" in str(row.last_error)
    assert desk.calls == []


async def test_worker_survives_database_errors(
    db_url: str, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose database fails (here: no tables yet) logs, backs off and recovers."""
    database = Database(db_url)
    desk = FakeChannel("desk")
    outbox = Outbox(database, {"desk": desk})
    try:
        async with running(outbox):
            await wait_until(
                lambda: any("outbox pass failed" in r.getMessage() for r in caplog.records),
                timeout=5,
            )
            database.upgrade()
            [row_id] = insert(database, "desk", at=utcnow())
            outbox.wake()
            await wait_until(lambda: rows(database)[row_id].status == "sent", timeout=5)
    finally:
        database.dispose()


async def test_two_workers_never_send_a_row_twice(db: Database, other_db: Database) -> None:
    """Two outboxes on one database delivering at once send each row exactly once between them,
    the one starting while the other is mid-send included."""
    ids = insert(db, "desk", 30, at=utcnow())
    first, second = FakeChannel("desk"), FakeChannel("desk")
    first.block()
    # Real clocks: the second pass starts after the first has claimed its row, so the row the
    # first worker holds would look due to the second if the claim were not a lease.
    # One by one (a burst of 30 would go out as one digest).
    one_by_one = {"desk": 100}
    early = asyncio.create_task(Outbox(db, {"desk": first}, bursts=one_by_one).deliver_due())
    try:
        await asyncio.wait_for(first.entered.wait(), timeout=5)
        late = await asyncio.wait_for(
            Outbox(other_db, {"desk": second}, bursts=one_by_one).deliver_due(), 10
        )
    finally:
        first.release()
    assert (await early, late) == (DeliveryReport(sent=1), DeliveryReport(sent=29))

    sent = first.sent_match_ids + second.sent_match_ids
    assert sorted(sent) == sorted(match_ids(db, ids))
    assert {(row.status, row.attempts) for row in rows(db).values()} == {("sent", 1)}


async def test_two_workers_racing_over_many_rows_never_send_one_twice(
    db: Database, other_db: Database
) -> None:
    """Two outboxes started together on one database split the due rows without a duplicate."""
    ids = insert(db, "desk", 40, at=utcnow())
    first, second = FakeChannel("desk"), FakeChannel("desk")
    reports = await asyncio.gather(
        Outbox(db, {"desk": first}).deliver_due(), Outbox(other_db, {"desk": second}).deliver_due()
    )
    assert sorted(first.sent_match_ids + second.sent_match_ids) == sorted(match_ids(db, ids))
    assert sum(report.sent for report in reports) == 40


async def test_row_being_sent_is_not_due_for_another_worker(
    db: Database, other_db: Database
) -> None:
    """A claimed row is leased for LEASE: another worker's pass meanwhile does not send it."""
    [row_id] = insert(db, "desk")
    slow = FakeChannel("desk")
    slow.block()
    sending = asyncio.create_task(Outbox(db, {"desk": slow}, clock=Clock()).deliver_due())
    try:
        await asyncio.wait_for(slow.entered.wait(), timeout=5)
        assert rows(db)[row_id].next_attempt_at == T0 + LEASE
        other = FakeChannel("desk")
        assert await Outbox(other_db, {"desk": other}, clock=Clock()).deliver_due() == (
            DeliveryReport()
        )
        assert other.calls == []
    finally:
        slow.release()
    assert await sending == DeliveryReport(sent=1)


async def test_blocked_channel_does_not_delay_another_channel(
    db: Database, wait_until: WaitUntil
) -> None:
    """While one channel's send hangs, a new alert for another channel is sent within 2 s."""
    [stuck] = insert(db, "webhook", at=utcnow())
    webhook, console = FakeChannel("webhook"), FakeChannel("console")
    webhook.block()
    outbox = Outbox(db, {"webhook": webhook, "console": console})
    async with running(outbox):
        await wait_until(lambda: webhook.in_flight == 1, timeout=5)
        [quick] = insert(db, "console", at=utcnow())
        outbox.wake()
        await wait_until(lambda: rows(db)[quick].status == "sent", timeout=2)
        assert webhook.in_flight == 1
        assert rows(db)[stuck].status == "pending"
        webhook.release()
        await wait_until(lambda: rows(db)[stuck].status == "sent", timeout=5)


async def test_stop_during_run_returns_within_the_grace_period_and_releases_the_row(
    db: Database,
) -> None:
    """Stopped while a send hangs, run returns after the grace period; the row is due again."""
    [row_id] = insert(db, "desk", at=utcnow())
    desk = FakeChannel("desk")
    desk.block()
    stop = asyncio.Event()
    grace = 0.3
    task = asyncio.create_task(Outbox(db, {"desk": desk}).run(stop, grace=grace))
    try:
        await asyncio.wait_for(desk.entered.wait(), timeout=5)
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        stop.set()
        await asyncio.wait_for(task, timeout=grace + 5)
        assert loop.time() - stopped_at < grace + 1.0
    finally:
        stop.set()
        desk.release()
    row = rows(db)[row_id]
    assert (row.status, row.attempts, desk.sent) == ("pending", 0, [])
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= utcnow()


async def test_stop_during_run_lets_the_in_flight_send_finish(
    db: Database, wait_until: WaitUntil
) -> None:
    """Stopped during a send that then completes, run records it and returns without claiming
    the next row."""
    first, second = insert(db, "desk", 2, at=utcnow())
    desk = FakeChannel("desk")
    desk.block()
    stop = asyncio.Event()
    task = asyncio.create_task(Outbox(db, {"desk": desk}).run(stop, grace=30))
    try:
        await wait_until(lambda: desk.in_flight == 1, timeout=5)
        stop.set()
        desk.release()
        await asyncio.wait_for(task, timeout=10)
    finally:
        stop.set()
        desk.release()
    every = rows(db)
    assert every[first].status == "sent"
    assert (every[second].status, every[second].attempts) == ("pending", 0)


async def test_deliver_due_stops_claiming_once_stop_is_set(db: Database) -> None:
    """deliver_due finishes the send in hand when stop is set, and claims nothing more."""
    first, *rest = insert(db, "desk", 3)
    desk = FakeChannel("desk")
    desk.block()
    stop = asyncio.Event()
    task = asyncio.create_task(Outbox(db, {"desk": desk}, clock=Clock()).deliver_due(stop))
    try:
        await asyncio.wait_for(desk.entered.wait(), timeout=5)
        stop.set()
    finally:
        desk.release()
    assert await task == DeliveryReport(sent=1)
    every = rows(db)
    assert every[first].status == "sent"
    assert [every[row_id].attempts for row_id in rest] == [0, 0]


async def test_row_claimed_by_a_dead_worker_is_sent_after_the_lease(db: Database) -> None:
    """A row claimed by a worker that died before recording stays hidden until its lease ends,
    then is sent."""
    [row_id] = insert(db, "desk")
    with db.session() as session:
        assert store.claim_group(session, "desk", due_by=T0, lease_until=T0 + LEASE, burst=20)
    desk = FakeChannel("desk")
    clock = Clock(T0 + LEASE - timedelta(seconds=1))
    outbox = Outbox(db, {"desk": desk}, clock=clock)

    assert await outbox.deliver_due() == DeliveryReport()
    clock.now = T0 + LEASE
    assert await outbox.deliver_due() == DeliveryReport(sent=1)

    row = rows(db)[row_id]
    assert (row.status, row.attempts, len(desk.sent)) == ("sent", 1, 1)


async def test_worker_whose_lease_ran_out_does_not_overwrite_the_new_owner(
    db: Database, other_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that outlived its lease leaves the new owner's outcome alone and logs the
    possible duplicate."""
    [row_id] = insert(db, "desk")
    slow, fresh = FakeChannel("desk"), FakeChannel("desk")
    slow.fail()
    slow.block()
    stalled = asyncio.create_task(Outbox(db, {"desk": slow}, clock=Clock()).deliver_due())
    try:
        await asyncio.wait_for(slow.entered.wait(), timeout=5)
        later = Clock(T0 + LEASE + timedelta(seconds=1))
        assert await Outbox(other_db, {"desk": fresh}, clock=later).deliver_due() == (
            DeliveryReport(sent=1)
        )
    finally:
        slow.release()
    await stalled

    row = rows(db)[row_id]
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert any("lease ran out" in r.getMessage() for r in caplog.records)
