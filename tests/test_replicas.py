"""Replicas: three ``monitor run`` processes on one PostgreSQL schema share 300 feeds served by a
local aiohttp server; one is killed with SIGKILL in the middle of a fetch. Every feed is still
fetched in every interval (the dead replica's feeds once its claims' lease has run out), no feed is
fetched twice at once, and every match is delivered once per channel.

The server serves each feed with ETags (so unchanged feeds cost a 304), publishes a new entry in
each feed every ITEM_EVERY seconds, some of which match the rule, takes SERVE_TIME to answer (so
overlapping fetches of a feed would show), and records the start and end of every request and
every alert POSTed to the two channels. The replicas' configs differ only in their User-Agent, so
the server can tell them apart: it kills the victim the moment that replica asks for a feed.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import text
from sqlmodel import select

from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow
from tests.conftest import listening, start_daemon
from tests.sources.conftest import rss, serve

ROOT = Path(__file__).resolve().parent.parent
FEEDS = 300
REPLICAS = 3
INTERVAL = 10.0
"""Each feed's fixed interval (seconds); the schedule adds ±10% jitter."""
LEASE = 8.0
"""fetching.lease: above connect_timeout + timeout + parse_timeout (1 + 3 + 3 s)."""
DISPATCH_EVERY = 5.0
"""monitor.app.DISPATCH_EVERY: how often a replica selects the feeds due."""
SLACK = 6.0
"""Time for a poll to get going on a busy machine."""
MAX_GAP = 1.1 * INTERVAL + DISPATCH_EVERY + SLACK
"""The longest a feed may go unfetched: its interval with jitter, until the next selection."""
ITEM_EVERY = 30.0
"""A feed publishes an entry this often: most fetches are 304s, as in life."""
SERVE_TIME = 0.1
MARKER = re.compile(r"rx-\d+-\d+")
WaitUntil = Callable[..., Awaitable[None]]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def entry(feed: int, number: int) -> dict[str, str]:
    """Entry ``number`` of ``feed``: every other entry of every fifth feed reports a breach."""
    marker = f"rx-{feed}-{number}"
    breach = feed % 5 == 0 and number % 2 == 0
    return {
        "title": f"Feed {feed} story {number} ({marker})",
        "description": f"Engineers confirmed a reactor breach at plant {marker}."
        if breach
        else f"Markets were calm on day {marker}.",
        "guid": marker,
        "link": f"https://example.org/{feed}/{number}",
    }


@dataclass
class Fetch:
    feed: int
    agent: str
    start: float
    end: float = 0.0


@dataclass
class Server:
    """The feeds and the channels' endpoint, in one aiohttp server."""

    port: int = 0
    started: float = field(default_factory=time.monotonic)
    frozen_at: float | None = None
    """Set: feeds publish nothing after this moment."""
    fetches: dict[int, list[Fetch]] = field(default_factory=lambda: defaultdict(list))
    active: Counter[int] = field(default_factory=Counter)
    overlaps: list[tuple[int, float]] = field(default_factory=list)
    alerts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    kill: tuple[str, Callable[[], None]] | None = None
    """(User-Agent, kill): called on the next feed request from that agent."""
    killed: Fetch | None = None

    def document(self, feed: int, now: float) -> bytes:
        # Feeds publish at moments spread over ITEM_EVERY, not all at once.
        age = min(now, self.frozen_at or now) - self.started + feed * ITEM_EVERY / FEEDS
        newest = int(age // ITEM_EVERY)
        items = [entry(feed, number) for number in range(max(0, newest - 2), newest + 1)]
        return rss(f"Feed {feed}", items)

    async def feed(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        fetch = Fetch(number, request.headers.get("User-Agent", ""), time.monotonic())
        self.fetches[number].append(fetch)
        self.active[number] += 1
        if self.active[number] > 1:
            self.overlaps.append((number, fetch.start))
        if self.kill is not None and fetch.agent == self.kill[0]:
            self.kill[1]()
            self.kill, self.killed = None, fetch
        try:
            await asyncio.sleep(SERVE_TIME)  # a server's work, so that overlapping fetches show
            return serve(request, self.document(number, fetch.start))
        finally:
            self.active[number] -= 1
            fetch.end = time.monotonic()

    async def alert(self, request: web.Request) -> web.Response:
        payload = await request.json()
        found = MARKER.findall(f"{payload.get('title')} {payload.get('message')}")
        for marker in set(found):
            self.alerts[request.match_info["channel"]][marker] += 1
        return web.json_response({"ok": True})

    def fetched_since(self, moment: float) -> dict[int, int]:
        """How many fetches of each feed started after ``moment``."""
        return {
            feed: sum(1 for fetch in fetches if fetch.start > moment)
            for feed, fetches in self.fetches.items()
        }

    def every_feed_fetched(self, times: int, since: float) -> bool:
        counts = self.fetched_since(since)
        return len(counts) == FEEDS and min(counts.values()) >= times


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The server on 127.0.0.1."""
    recorder = Server()
    app = web.Application()
    app.router.add_get("/feeds/{number}.xml", recorder.feed)
    app.router.add_post("/alerts/{channel}", recorder.alert)
    async with listening(app, access_log=None, shutdown_timeout=0.5) as port:
        recorder.port = port
        yield recorder


def agent(replica: int) -> str:
    return f"monitor-test/replica-{replica}"


def write_configs(tmp_path: Path, database: str, port: int) -> list[Path]:
    """One config per replica, alike but for the User-Agent."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "breach.yaml").write_text(
        "rules:\n"
        "  - {id: breach, name: Reactor breach, severity: high, keywords: [reactor breach]}\n",
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{port}"
    feeds = "".join(
        f"  - {{id: f{n:03d}, type: feed, url: '{base}/feeds/{n}.xml', interval: {INTERVAL:g}s,"
        " allow_private: true}\n"
        for n in range(FEEDS)
    )
    configs = []
    for replica in range(REPLICAS):
        config = tmp_path / f"replica-{replica}.yaml"
        config.write_text(
            f"database: '{database}'\n"
            "rules: rules\n"
            "stories: null\n"  # every match alerts on its own
            "delivery_lease: 6s\n"
            "retry_first: 1s\n"
            "retry_max: 2s\n"
            "fetching:\n"
            f"  min_interval: {INTERVAL:g}s\n"
            "  concurrency: 50\n"
            "  per_host: 100\n"
            "  connect_timeout: 1s\n"
            "  timeout: 3s\n"
            "  parse_timeout: 3s\n"
            f"  lease: {LEASE:g}s\n"
            "  parsers: 1\n"
            f"  user_agent: {agent(replica)}\n"
            "channels:\n"
            f"  - {{id: a, url: 'json://127.0.0.1:{port}/alerts/a', burst: 10000}}\n"
            f"  - {{id: b, url: 'json://127.0.0.1:{port}/alerts/b', burst: 10000}}\n"
            "notify: [a, b]\n"
            f"sources:\n{feeds}",
            encoding="utf-8",
        )
        configs.append(config)
    return configs


def replica_id(log: Path) -> str | None:
    """The replica id a process logged at start."""
    found = re.search(r"starting replica (\S+): \d+ rules", log.read_text(errors="replace"))
    return found.group(1) if found else None


def all_sent(db: Database) -> bool:
    """True once matches exist and each has one sent delivery per channel."""
    with db.session() as session:
        matches = len(session.exec(select(MatchRow.id)).all())
        sent = session.exec(select(DeliveryRow.status, DeliveryRow.channel)).all()
    return matches > 0 and len(sent) == 2 * matches and {status for status, _ in sent} == {"sent"}


def tails(logs: list[Path]) -> str:
    parts = []
    for log in logs:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        problems = [line for line in lines if " ERROR " in line or " WARNING " in line]
        parts.append(f"--- {log.name}\n" + "\n".join(problems[-10:] + lines[-10:]))
    return "\n".join(parts)


def gaps(fetches: list[Fetch], end: float) -> list[tuple[float, float]]:
    """(from, to) between consecutive fetch starts of a feed, and from the last to ``end``."""
    starts = sorted(fetch.start for fetch in fetches)
    return list(zip(starts, [*starts[1:], end], strict=True))


def unpunctual(
    server: Server, start: float, killed_at: float, end: float
) -> tuple[list[object], list[object]]:
    """Feeds that went longer than allowed without a fetch from ``start`` on (a gap across the
    kill may add the lease and a selection), and feeds fetched again well before their interval
    (claimed twice): (feed, seconds into the run, gap) each."""
    late: list[object] = []
    early: list[object] = []
    for feed, fetches in sorted(server.fetches.items()):
        for since, until in gaps([fetch for fetch in fetches if fetch.start >= start], end):
            allowed = MAX_GAP + (LEASE + DISPATCH_EVERY if since <= killed_at <= until else 0)
            where = (feed, round(since - server.started, 1), round(until - since, 1))
            if until - since > allowed:
                late.append(where)
            if until != end and until - since < INTERVAL / 2:
                early.append(where)
    return late, early


def misdelivered(db: Database, server: Server) -> list[str]:
    """What differs from one alert per match and channel, a second one allowed only where the
    delivery counts a possible duplicate (its claim was cut off)."""
    with db.session() as session:
        rows = session.exec(
            select(ArticleRow.title, DeliveryRow.channel, DeliveryRow.redeliveries)
            .join(MatchRow, MatchRow.article_id == ArticleRow.id)  # type: ignore[arg-type]
            .join(DeliveryRow, DeliveryRow.match_id == MatchRow.id)  # type: ignore[arg-type]
        ).all()
    expected: dict[str, dict[str, int]] = {"a": {}, "b": {}}
    for title, channel, redeliveries in rows:
        [marker] = MARKER.findall(title)
        expected[channel][marker] = redeliveries
    problems = []
    for channel, markers in expected.items():
        received = server.alerts[channel]
        if not markers or set(received) != set(markers):
            problems.append(f"{channel}: {len(markers)} matches, {len(received)} alerted")
        for marker, count in received.items():
            if count > 1 and (count > 2 or not markers.get(marker)):
                problems.append(f"{channel}: {marker} sent {count} times")
    return problems


async def test_three_replicas_share_300_feeds_and_survive_a_kill(
    tmp_path: Path, postgres_schema_url: str, server: Server, wait_until: WaitUntil
) -> None:
    """Three replicas, one killed mid-fetch: every feed fetched in every interval (the victim's
    within the lease), none twice at once, each match delivered once per channel (a second send
    only where a claim was cut off and counted)."""
    configs = write_configs(tmp_path, postgres_schema_url, server.port)
    logs = [tmp_path / f"replica-{replica}.log" for replica in range(REPLICAS)]
    db = Database(postgres_schema_url)
    processes = [await start_daemon(config, log) for config, log in zip(configs, logs, strict=True)]
    victim = processes[0]
    try:
        # Every feed fetched, then fetched again: the replicas are in their stride. (The first
        # round, three articles a feed to store, queues up on a busy machine: punctuality is
        # checked from here on.)
        await wait_until(lambda: server.every_feed_fetched(1, 0.0), timeout=90, interval=0.2)
        warm = time.monotonic()
        await wait_until(lambda: server.every_feed_fetched(1, warm), timeout=60, interval=0.2)
        steady = time.monotonic()
        victim_id = replica_id(logs[0])
        assert victim_id is not None

        server.kill = (agent(0), lambda: victim.send_signal(signal.SIGKILL))
        await wait_until(lambda: server.killed is not None, timeout=30, interval=0.05)
        assert server.killed is not None
        killed_at = server.killed.start
        assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL
        with db.engine.connect() as connection:
            held = connection.execute(
                text("SELECT source_id FROM feeds WHERE claimed_by = :id"), {"id": victim_id}
            ).all()
        # The dead replica still holds the claim on the feed it was fetching, at least.
        assert f"f{server.killed.feed:03d}" in {row[0] for row in held}

        # The survivors carry on, the dead replica's feeds included once its lease is over.
        await wait_until(
            lambda: server.every_feed_fetched(2, killed_at), timeout=4 * MAX_GAP, interval=0.2
        )
        frozen = server.frozen_at = time.monotonic()  # nothing new: the outbox can catch up
        await wait_until(
            lambda: server.every_feed_fetched(1, frozen), timeout=2 * MAX_GAP, interval=0.2
        )
        await wait_until(lambda: all_sent(db), timeout=60, interval=0.2)
        observed_until = time.monotonic()
        problems = misdelivered(db, server)
    except BaseException:
        print(tails(logs))
        raise
    finally:
        db.dispose()
        for process in processes[1:]:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(process.wait(), 30) for process in processes]
    assert codes[1:] == [0, 0], tails(logs)

    assert server.overlaps == []  # no feed fetched twice at once
    late, early = unpunctual(server, steady, killed_at, observed_until)
    assert late == [], tails(logs)
    assert early == []
    assert problems == []
    # The work was shared: each replica fetched feeds.
    shares = Counter(fetch.agent for fetches in server.fetches.values() for fetch in fetches)
    print(f"fetches by replica: {dict(shares)}; alerts: {len(server.alerts['a'])}")  # with -s
    assert set(shares) == {agent(replica) for replica in range(REPLICAS)}
