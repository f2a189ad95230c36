"""Feed claims between replicas: two FeedSources on one database (two daemons sharing it), on a
real SQLite file and on the real PostgreSQL, polling feeds from a real local server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from sqlmodel import func, select

from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.pipeline import CompiledRules, IngestResult, Pipeline
from monitor.settings import FeedSourceSettings, FetchSettings
from monitor.sources.feed import FeedSources
from monitor.store import stats
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, FeedRow
from tests.sources.conftest import FeedServer, item, rss, serve, states, status

T0 = datetime(2030, 1, 7, 12, tzinfo=UTC)
LEASE = timedelta(minutes=2)
RULE = Rule(id="breach", name="Breach", keywords=("reactor breach",))


@dataclass
class Clock:
    """A replica's clock, set by the test."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


Replica = Callable[..., FeedSources]


@pytest.fixture
async def replica(db: Database) -> AsyncIterator[Replica]:
    """``replica(name, feeds, clock, **fetching)``: a FeedSources on the test's database (3 s
    timeout and 5 s parse timeout unless ``fetching`` says otherwise); closed afterwards."""
    made: list[FeedSources] = []

    def make(name: str, feeds: dict[str, str], clock: Clock, **fetching: object) -> FeedSources:
        sources = FeedSources(
            [
                FeedSourceSettings(id=source_id, type="feed", url=url, allow_private=True)
                for source_id, url in feeds.items()
            ],
            FetchSettings.model_validate(
                {"parsers": 1, "timeout": "3s", "parse_timeout": "5s", **fetching}
            ),
            db,
            Pipeline(db, CompiledRules.build(RuleSet(rules=(RULE,))), ("console",)),
            clock=clock,
            holder=name,
        )
        made.append(sources)
        return sources

    yield make
    for sources in made:
        await sources.close()


def articles(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(ArticleRow)).one())


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The WARNING messages of monitor.sources.feed logged so far."""
    with caplog.at_level(logging.WARNING, logger="monitor.sources.feed"):
        yield lambda: [
            r.getMessage()
            for r in caplog.records
            if r.name == "monitor.sources.feed" and r.levelno == logging.WARNING
        ]


async def test_two_replicas_claiming_at_once_never_claim_the_same_feed(
    db: Database, replica: Replica
) -> None:
    """Two replicas selecting from threads at once claim every due feed between them, none
    twice, and the rows name the replica that holds each, until the lease's end."""
    feeds = {f"f{n}": f"http://127.0.0.1:9/f{n}.xml" for n in range(60)}
    clock = Clock()
    a, b = replica("a", feeds, clock), replica("b", feeds, clock)
    a.sync()
    b.sync()
    with ThreadPoolExecutor(2) as pool:
        rounds = [(r.holder, pool.submit(r.due, 7)) for _ in range(5) for r in (a, b)]
        claimed = [(holder, row.source_id) for holder, f in rounds for row, _sub in f.result()]
    ids = [source_id for _holder, source_id in claimed]
    assert len(ids) == len(set(ids)) == 60
    assert {holder for holder, _id in claimed} == {"a", "b"}
    stored = states(db)
    assert {(stored[i].claimed_by, i) for i in ids} == set(claimed)
    assert {stored[i].claimed_until for i in ids} == {T0 + LEASE}
    assert a.due(10) == b.due(10) == []


async def test_a_lease_is_taken_over_when_it_runs_out_and_not_before(
    db: Database, replica: Replica
) -> None:
    """A claim holds its feeds from other replicas until the lease's end; then another replica
    claims them."""
    feeds = {f"f{n}": f"http://127.0.0.1:9/f{n}.xml" for n in range(5)}
    a = replica("a", feeds, Clock())
    later = Clock(T0 + LEASE - timedelta(seconds=1))
    b = replica("b", feeds, later)
    a.sync()
    assert len(a.due(10)) == 5
    assert b.due(10) == []
    later.now = T0 + LEASE
    assert sorted(row.source_id for row, _sub in b.due(10)) == sorted(feeds)
    assert {row.claimed_by for row in states(db).values()} == {"b"}


async def test_a_live_replica_renews_its_claims_but_not_one_taken_over(
    db: Database, replica: Replica, wait_until: Callable[..., Awaitable[None]]
) -> None:
    """While it runs, a replica moves the lease's end of the feeds it has claimed forward every
    third of the lease; a claim another replica took over after it ran out stays theirs."""
    feeds = {"x": "http://127.0.0.1:9/x.xml", "y": "http://127.0.0.1:9/y.xml"}
    short = {"connect_timeout": "1s", "timeout": "1s", "parse_timeout": "1s", "lease": "3.5s"}
    clock = Clock()
    a = replica("a", feeds, clock, **short)
    b = replica("b", feeds, Clock(T0 + timedelta(seconds=3.5)), **short)
    a.sync()
    assert len(a.due(2)) == 2
    assert len(b.claim(["y"])) == 1  # a's claim on y ran out (a stalled): b took it over
    b_lease = states(db)["y"].claimed_until
    clock.now = T0 + timedelta(seconds=2)
    stop = asyncio.Event()
    keeping = asyncio.create_task(a.keep_claims(stop))
    try:
        renewed = T0 + timedelta(seconds=5.5)
        await wait_until(lambda: states(db)["x"].claimed_until == renewed, timeout=10)
    finally:
        stop.set()
        await keeping
    stored = states(db)
    assert (stored["x"].claimed_by, stored["y"].claimed_by) == ("a", "b")
    assert stored["y"].claimed_until == b_lease


@pytest.mark.parametrize(
    "path", ["/news.xml", "/broken.xml"], ids=["in-the-ingest", "group-committed"]
)
async def test_a_stale_save_after_a_takeover_is_dropped(
    db: Database,
    replica: Replica,
    feed_server: FeedServer,
    warnings: Callable[[], list[str]],
    path: str,
) -> None:
    """A replica whose lease ran out while it polled, the feed taken over meanwhile, stores
    nothing and saves no state ("lease lost"), whether its outcome goes with articles or alone
    (a failure); the new holder's poll is saved and releases the claim."""
    feed_server.documents["/news.xml"] = rss("News", [item(1, "A reactor breach at dawn.")])
    feed_server.routes["/broken.xml"] = status(500)
    feeds = {"x": feed_server.url(path)}
    a = replica("a", feeds, Clock())
    b = replica("b", feeds, Clock(T0 + LEASE + timedelta(seconds=1)))
    a.sync()
    [claimed_by_a] = a.due(10)
    [claimed_by_b] = b.due(10)

    assert await a.poll("x", claimed_by_a) == IngestResult()
    assert any("feed x: lease lost" in message for message in warnings())
    stale = states(db)["x"]
    assert (stale.claimed_by, stale.last_checked_at, stale.consecutive_failures) == ("b", None, 0)
    assert articles(db) == 0

    await b.poll("x", claimed_by_b)
    saved = states(db)["x"]
    assert (saved.claimed_by, saved.claimed_until) == (None, None)
    assert saved.last_checked_at == T0 + LEASE + timedelta(seconds=1)
    assert articles(db) == (1 if path == "/news.xml" else 0)
    assert saved.consecutive_failures == (1 if path == "/broken.xml" else 0)


async def test_a_poll_too_late_for_its_lease_sends_nothing_and_releases_the_claim(
    db: Database, replica: Replica, feed_server: FeedServer
) -> None:
    """A poll that could only start its request when less of its lease is left than a fetch and
    a parse may take sends nothing; its feed stays due and is free to claim at once."""
    feed_server.documents["/news.xml"] = rss("News", [item(1)])
    clock = Clock()
    a = replica("a", {"x": feed_server.url("/news.xml")}, clock)
    a.sync()
    [claimed] = a.due(1)
    clock.now = T0 + LEASE - timedelta(seconds=7)  # 3 s timeout + 5 s parse no longer fit
    assert await a.poll("x", claimed) == IngestResult()
    assert feed_server.hits == {}
    row = states(db)["x"]
    assert (row.claimed_by, row.next_check_at, row.last_checked_at) == (None, T0, None)
    assert [loaded[0].source_id for loaded in a.due(1)] == ["x"]


class Elapsing(Clock):
    """A replica's clock that runs: T0 plus the seconds since it was made."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=time.monotonic() - self.started)


async def test_polls_queued_behind_a_busy_host_keep_their_claims_while_they_are_renewed(
    db: Database, replica: Replica, feed_server: FeedServer
) -> None:
    """Feeds of one host, fetched one at a time, wait for that host longer than their first
    lease leaves for a poll; renewed meanwhile, every one is still fetched in the round."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return serve(request, rss("News", [item(1)]))

    count = 12
    for n in range(count):
        feed_server.routes[f"/{n}.xml"] = slow
    feeds = {f"f{n}": feed_server.url(f"/{n}.xml") for n in range(count)}
    # A poll needs timeout + parse_timeout = 2 s of its 6 s lease: the ninth in the host's
    # queue starts after 4 s, past its first lease's window; renewals every 2 s keep at least
    # 2 s of room.
    short = {"connect_timeout": "1s", "timeout": "1s", "parse_timeout": "1s", "lease": "6s"}
    a = replica("a", feeds, Elapsing(), per_host=1, **short)
    a.sync()
    claimed = a.due(count)
    stop = asyncio.Event()
    keeping = asyncio.create_task(a.keep_claims(stop))
    try:
        await asyncio.gather(*(a.poll(loaded[0].source_id, loaded) for loaded in claimed))
    finally:
        stop.set()
        await keeping
    assert feed_server.hits == {f"/{n}.xml": 1 for n in range(count)}
    stored = states(db)
    assert all(stored[f"f{n}"].last_checked_at is not None for n in range(count))
    assert {row.claimed_by for row in stored.values()} == {None}


async def test_a_once_round_leaves_the_feeds_another_replica_polls(
    db: Database, replica: Replica, feed_server: FeedServer
) -> None:
    """``run --once`` polls every feed free to claim and leaves one another replica holds."""
    feed_server.documents["/x.xml"] = rss("X", [item(1)])
    feed_server.documents["/y.xml"] = rss("Y", [item(2)])
    feeds = {"x": feed_server.url("/x.xml"), "y": feed_server.url("/y.xml")}
    a, b = replica("a", feeds, Clock()), replica("b", feeds, Clock())
    a.sync()
    assert [loaded[0].source_id for loaded in b.claim(["x"])] == ["x"]
    results: list[IngestResult] = []
    assert await a.poll_listed(["x", "y"], results.append) == 1
    assert feed_server.hits == {"/y.xml": 1}
    assert [result.new for result in results] == [1]
    stored = states(db)
    assert (stored["x"].claimed_by, stored["y"].claimed_by) == ("b", None)


async def test_a_stopping_replica_releases_the_claims_it_did_not_poll(
    db: Database, replica: Replica
) -> None:
    """Closing a replica's feed sources releases its claims, so its feeds need not wait for the
    lease; another replica's claims stay."""
    feeds = {f"f{n}": f"http://127.0.0.1:9/f{n}.xml" for n in range(4)}
    a, b = replica("a", feeds, Clock()), replica("b", feeds, Clock())
    a.sync()
    assert len(a.due(3)) == 3
    assert len(b.due(3)) == 1
    await a.close()
    claimed = sorted((row.claimed_by or "-") for row in states(db).values())
    assert claimed == ["-", "-", "-", "b"]
    assert len(b.due(10)) == 3


async def test_polls_of_two_replicas_at_once_never_overlap_on_a_feed(
    db: Database, replica: Replica, feed_server: FeedServer
) -> None:
    """Two replicas dispatching and polling the same feeds at the same time fetch each feed
    once: a feed one of them is fetching is not claimed by the other."""
    in_flight: set[str] = set()
    overlaps: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        if request.path in in_flight:
            overlaps.append(request.path)
        in_flight.add(request.path)
        await asyncio.sleep(0.05)  # the server's work: both replicas' polls overlap in time
        in_flight.discard(request.path)
        return web.Response(body=rss("F", [item(1)]))

    feeds = {f"f{n}": feed_server.url(f"/f{n}.xml") for n in range(20)}
    for n in range(20):
        feed_server.routes[f"/f{n}.xml"] = slow
    a, b = replica("a", feeds, Clock()), replica("b", feeds, Clock())
    a.sync()

    async def dispatch(sources: FeedSources) -> int:
        polled = 0
        while selected := await asyncio.to_thread(sources.due, 4):
            polled += len(selected)
            await asyncio.gather(
                *(sources.poll(row.source_id, (row, sub)) for row, sub in selected)
            )
        return polled

    assert sum(await asyncio.gather(dispatch(a), dispatch(b))) == 20
    assert overlaps == []
    assert sorted(feed_server.hits.values()) == [1] * 20


def test_a_feed_removed_from_the_config_is_counted_nowhere_even_if_it_was_gone(
    db: Database, replica: Replica
) -> None:
    """A feed the server had disabled (410 Gone), then removed from the config, is retired like
    any other: the health gauges no longer count it."""
    a = replica("a", {"x": "http://127.0.0.1:9/x.xml", "gone": "http://127.0.0.1:9/g.xml"}, Clock())
    a.sync()
    with db.session() as session:
        row = session.get(FeedRow, "gone")
        assert row is not None
        row.disabled, row.next_check_at = "HTTP 410 Gone", None
        session.add(row)
    with db.session() as session:
        assert stats.feed_stats(session, T0, timedelta(days=7)).states == {"new": 1, "disabled": 1}
    a.sync([a.feeds["x"]])
    with db.session() as session:
        assert stats.feed_stats(session, T0, timedelta(days=7)).states == {"new": 1}
    assert (states(db)["gone"].disabled, states(db)["gone"].next_check_at) == (None, None)
