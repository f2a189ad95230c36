"""Throttling, digests, bursts and story grouping, from stored match to sent message: the real
pipeline and outbox on SQLite and PostgreSQL, a recording channel, a clock the test moves."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article, Severity
from monitor.notify.outbox import DeliveryReport, Outbox
from monitor.notify.policy import ChannelPolicy, DigestSchedule, Policy
from monitor.notify.testing import FakeChannel
from monitor.pipeline import CompiledRules, Pipeline
from monitor.store.db import Database
from monitor.store.tables import DeliveryRow

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CURFEW = Rule(id="curfew", name="Curfew", severity=Severity.HIGH, keywords=("curfew",))
WORDS = [f"w{n:04d}" for n in range(2_000)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def report(number: int, rng: random.Random) -> Article:
    """A story of its own (no two share a run of three words) that mentions a curfew."""
    words = " ".join(rng.sample(WORDS, 60))
    return Article(
        title=f"Curfew report {number}",
        body=f"A curfew was declared. {words}",
        source_id=f"outlet{number % 7}",
        key=f"report-{number}",
        url=f"https://example.org/{number}",
    )


def setup(
    db: Database, rule: Rule, policy: Policy, clock: Clock, desk: FakeChannel
) -> tuple[Pipeline, Outbox]:
    flow = Pipeline(db, CompiledRules.build(RuleSet(rules=(rule,))), clock=clock, policy=policy)
    return flow, Outbox(db, {desk.id: desk}, clock=clock)


async def test_500_matches_with_a_throttle_make_one_alert_and_one_digest(db: Database) -> None:
    """A rule with throttle: 10m alerts once for its first match; the 499 others of the minute
    go out as one digest when the window ends, listing every article."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(1)
    rule = replace(CURFEW, throttle=timedelta(minutes=10))
    flow, outbox = setup(db, rule, Policy(default=("desk",)), clock, desk)
    for batch in range(50):
        clock.now = T0 + timedelta(seconds=batch)
        flow.ingest("wire", [report(batch * 10 + n, rng) for n in range(10)])
        await outbox.deliver_due()
    assert [len(desk.sent), len(desk.digests)] == [1, 0]
    clock.now = T0 + timedelta(minutes=10)
    assert await outbox.deliver_due() == DeliveryReport(sent=499)
    [digest] = desk.digests
    assert digest.reason == "throttle"
    assert len({alert.match_id for alert in digest.alerts}) == 499
    assert {alert.title for alert in digest.alerts} == {f"Curfew report {n}" for n in range(1, 500)}
    assert len(desk.sent) == 500
    clock.now += timedelta(hours=1)
    assert await outbox.deliver_due() == DeliveryReport()


async def test_a_burst_goes_out_as_one_digest_and_a_few_one_by_one(db: Database) -> None:
    """More than the channel's burst due at once make one digest; up to it, one alert each."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(2)
    flow, outbox = setup(db, CURFEW, Policy(default=("desk",)), clock, desk)
    flow.ingest("wire", [report(n, rng) for n in range(25)])
    assert await outbox.deliver_due() == DeliveryReport(sent=25)
    assert [(d.reason, len(d.alerts)) for d in desk.digests] == [("burst", 25)]
    flow.ingest("wire", [report(n, rng) for n in range(100, 103)])
    assert await outbox.deliver_due() == DeliveryReport(sent=3)
    assert len(desk.digests) == 1
    assert len(desk.sent) == 28


async def test_a_digest_channel_sends_its_slot_as_one_message(db: Database) -> None:
    """A channel with digest: 1h receives nothing until the hour, then one digest of all."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(3)
    clock.now = T0 + timedelta(minutes=20)
    policy = Policy(default=("desk",), channels={"desk": ChannelPolicy(DigestSchedule.parse("1h"))})
    flow, outbox = setup(db, CURFEW, policy, clock, desk)
    flow.ingest("wire", [report(n, rng) for n in range(3)])
    assert await outbox.deliver_due() == DeliveryReport()
    clock.now = T0 + timedelta(hours=1)
    assert await outbox.deliver_due() == DeliveryReport(sent=3)
    assert [(d.reason, len(d.alerts)) for d in desk.digests] == [("schedule", 3)]


async def test_a_failed_digest_is_retried_whole(db: Database) -> None:
    """A digest the service refused stays together: its rows wait for the same retry and go
    out again as one digest."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(4)
    flow, outbox = setup(db, CURFEW, Policy(default=("desk",)), clock, desk)
    flow.ingest("wire", [report(n, rng) for n in range(21)])
    desk.fail(times=1)
    assert await outbox.deliver_due() == DeliveryReport(failed=21)
    with db.session() as session:
        due = {row.next_attempt_at for row in session.exec(select(DeliveryRow)).all()}
    assert len(due) == 1
    clock.now += timedelta(hours=2)
    assert await outbox.deliver_due() == DeliveryReport(sent=21)
    assert [len(d.alerts) for d in desk.digests] == [21]


WIRE = (
    "Authorities imposed a curfew across the capital on Monday night after a third day of "
    "clashes between police and protesters, the interior ministry said in a statement that "
    "also announced the closure of schools and markets until further notice."
)


async def test_ten_rewrites_of_a_story_make_one_alert_listing_the_outlets(db: Database) -> None:
    """The same wire story from ten feeds alerts once; the alert lists the nine other outlets
    (with the first, ten in all)."""
    clock, desk = Clock(), FakeChannel("desk")
    flow, outbox = setup(db, CURFEW, Policy(default=("desk",)), clock, desk)
    for number in range(10):
        story = Article(
            title=f"Curfew imposed in the capital ({number})",
            body=f"{WIRE} Edited by desk {number}.",
            source_id=f"feed{number}",
            key="wire-1",
            url=f"https://feed{number}.example/curfew",
        )
        flow.ingest(f"feed{number}", [story])
    assert await outbox.deliver_due() == DeliveryReport(sent=1)
    [alert] = desk.sent
    assert alert.source_id == "feed0"
    assert [outlet.source_id for outlet in alert.outlets] == [f"feed{n}" for n in range(1, 10)]


async def test_a_corroborated_rule_alerts_once_enough_sources_report(db: Database) -> None:
    """min_sources: 3 holds matches from one or two sources; the third source's match alerts,
    listing the earlier reports; later ones in the window are folded into that alert."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(5)
    rule = replace(CURFEW, min_sources=3, window=timedelta(hours=6))
    flow, outbox = setup(db, rule, Policy(default=("desk",)), clock, desk)

    def from_source(number: int, source: str) -> Article:
        return replace(report(number, rng), source_id=source)

    flow.ingest("a", [from_source(1, "a")])
    flow.ingest("a", [from_source(2, "a")])
    clock.now += timedelta(hours=1)
    flow.ingest("b", [from_source(3, "b")])
    assert await outbox.deliver_due() == DeliveryReport()
    clock.now += timedelta(hours=1)
    flow.ingest("c", [from_source(4, "c"), from_source(5, "c")])
    flow.ingest("d", [from_source(6, "d")])
    assert await outbox.deliver_due() == DeliveryReport(sent=1)
    [alert] = desk.sent
    assert alert.title == "Curfew report 4"
    assert [o.title for o in alert.outlets] == [f"Curfew report {n}" for n in (1, 2, 3, 5, 6)]


async def test_corroboration_counts_only_the_window(db: Database) -> None:
    """Reports older than the window do not count towards min_sources."""
    clock, desk, rng = Clock(), FakeChannel("desk"), random.Random(6)
    rule = replace(CURFEW, min_sources=2, window=timedelta(hours=6))
    flow, outbox = setup(db, rule, Policy(default=("desk",)), clock, desk)
    flow.ingest("a", [replace(report(1, rng), source_id="a")])
    clock.now += timedelta(hours=7)
    flow.ingest("b", [replace(report(2, rng), source_id="b")])
    assert await outbox.deliver_due() == DeliveryReport()
    clock.now += timedelta(hours=1)
    flow.ingest("c", [replace(report(3, rng), source_id="c")])
    assert await outbox.deliver_due() == DeliveryReport(sent=1)
    assert [o.title for o in desk.sent[0].outlets] == ["Curfew report 2"]
