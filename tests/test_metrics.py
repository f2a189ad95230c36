"""/metrics, /readyz and the metrics behind them: a real daemon run over real feeds, scraped over
HTTP and read with prometheus_client's own parser; the database's gauges on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from monitor.app import App, Daemon
from monitor.metrics import Metrics, fetch_error_reason
from monitor.settings import Settings
from monitor.sources.health import source_health
from monitor.store.db import Database
from monitor.store.tables import DeliveryRow, FeedRow
from monitor.web.metrics import DatabaseCollector
from tests.notify.conftest import free_port, insert_deliveries
from tests.sources.conftest import FeedServer, item, rss, serving, status

TOKEN = "metrics-t0ken-123"
RULES = """\
rules:
  - id: unrest
    name: Protests
    severity: high
    keywords: [protesters]
  - id: quake
    name: Earthquake
    severity: critical
    keywords: [earthquake]
"""
# Texts far apart, so story grouping folds none of them into another's alert.
PROTEST = "Thousands of protesters marched to the parliament demanding new elections."
CLASHES = "Police used tear gas on protesters near the central station late on Sunday night."
QUAKE = "A strong earthquake shook the coastal province; several buildings collapsed."
CALM = ["Markets were calm and bond yields barely moved.", "The orchestra opened its season."]

WaitUntil = Callable[..., Awaitable[None]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    """Two good feeds (three matching entries among five) and three failing with known faults."""
    server = FeedServer()
    server.documents["/a.xml"] = rss("A", [item(1, PROTEST), item(2, CALM[0]), item(3, CLASHES)])
    server.documents["/b.xml"] = rss("B", [item(4, QUAKE), item(5, CALM[1])])
    server.documents["/page.html"] = b"<!DOCTYPE html><html><body><p>Welcome!</p></body></html>"
    server.routes["/broken.xml"] = status(500)
    server.routes["/missing.xml"] = status(404)
    async with serving(server):
        yield server


def write_config(tmp_path: Path, server: FeedServer, channel_url: str, db_url: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "watch.yaml").write_text(RULES, encoding="utf-8")
    paths = {"a": "/a.xml", "b": "/b.xml", "html": "/page.html", "broken": "/broken.xml"}
    paths["missing"] = "/missing.xml"
    lines = [
        f"database: '{db_url}'",
        "rules: rules",
        f"channels: [{{id: desk, url: '{channel_url}'}}]",
        "notify: [desk]",
        f"http: {{listen: '127.0.0.1:{free_port()}', token: {TOKEN}}}",
        "fetching: {timeout: 3s, parse_timeout: 5s, parsers: 1}",
        "sources:",
        *(
            f"  - {{id: {source}, type: feed, url: '{server.url(path)}', allow_private: true}}"
            for source, path in paths.items()
        ),
    ]
    config = tmp_path / "monitor.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels, through prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        found
        for (sample, sample_labels), found in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


async def scrape(client: aiohttp.ClientSession, base: str) -> tuple[str, Samples]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with client.get(f"{base}/metrics", headers=headers) as answer:
        assert answer.status == 200
        return answer.headers["Content-Type"], parse(await answer.text())


async def scrape_until(
    client: aiohttp.ClientSession,
    base: str,
    condition: Callable[[Samples], bool],
    timeout: float,
) -> Samples:
    """Scrape until ``condition`` holds of the samples; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _type, samples = await scrape(client, base)
        if condition(samples):
            return samples
        assert loop.time() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.05)


def labelled(samples: Samples, name: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples by their label values."""
    return {
        tuple(value for _key, value in labels): found
        for (sample, labels), found in samples.items()
        if sample == name
    }


def check_first_round(samples: Samples, started: datetime, finished: datetime) -> None:
    """The counts of the first round over the feeds of the ``feeds`` fixture."""
    assert labelled(samples, "monitor_fetches_total") == {
        ("ok",): 2,
        ("error",): 3,
        ("not_modified",): 0,
    }
    assert labelled(samples, "monitor_fetch_errors_total") == {
        ("http_5xx",): 1,
        ("http_4xx",): 1,
        ("not_a_feed",): 1,
    }
    assert labelled(samples, "monitor_articles_ingested_total") == {("new",): 5, ("updated",): 0}
    assert labelled(samples, "monitor_matches_total") == {
        ("unrest", "high"): 2,
        ("quake", "critical"): 1,
    }
    assert labelled(samples, "monitor_deliveries_total") == {
        ("desk", "sent"): 3,
        ("desk", "failed"): 0,
        ("desk", "deferred"): 0,
        ("desk", "dead"): 0,
    }
    # Every article was matched once; every alert sent was timed from its pubDate.
    assert value(samples, "monitor_match_latency_seconds_count") == 5
    assert value(samples, "monitor_publish_to_alert_seconds_count", channel="desk") == 3
    published = [parsedate_to_datetime(item(number)["pubDate"]) for number in (1, 3, 4)]
    latency = value(samples, "monitor_publish_to_alert_seconds_sum", channel="desk")
    assert latency is not None
    assert sum((started - p).total_seconds() for p in published) <= latency
    assert latency <= sum((finished - p).total_seconds() for p in published)
    # The database's gauges: nothing left in the outbox, the feeds' health, no lag.
    assert value(samples, "monitor_database_up") == 1
    assert labelled(samples, "monitor_outbox_depth") == {
        ("desk", "dead"): 0,
        ("desk", "pending"): 0,
    }
    assert value(samples, "monitor_outbox_oldest_pending_age_seconds", channel="desk") == 0
    assert labelled(samples, "monitor_feeds") == {
        ("new",): 0,
        ("ok",): 2,
        ("failing",): 3,
        ("disabled",): 0,
        ("stale",): 0,
    }
    assert value(samples, "monitor_feeds_due") == 0
    assert value(samples, "monitor_feed_lag_seconds") == 0
    assert value(samples, "monitor_rules_loaded") == 2
    reloaded = value(samples, "monitor_rules_last_reload_timestamp_seconds")
    assert reloaded is not None
    assert reloaded <= started.timestamp() + 1
    assert value(samples, "monitor_rules_reload_failures_total") == 0
    assert (value(samples, "process_resident_memory_bytes") or 0) > 0


async def check_access(client: aiohttp.ClientSession, base: str) -> None:
    """/metrics and /readyz need the token, /healthz does not; /readyz says ready."""
    for path in ("/metrics", "/readyz"):
        async with client.get(f"{base}{path}") as answer:
            assert answer.status == 401
        wrong = {"Authorization": "Bearer wrong"}
        async with client.get(f"{base}{path}", headers=wrong) as answer:
            assert answer.status == 401
    async with client.get(f"{base}/healthz") as answer:
        assert answer.status == 200
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with client.get(f"{base}/readyz", headers=good) as answer:
        assert answer.status == 200
        body = await answer.json()
    assert body == {"ready": True, "checks": {"database": "ok", "rules": "ok", "scheduler": "ok"}}


async def test_a_known_run_is_counted_and_served_to_prometheus(
    feeds: FeedServer, sink: Any, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """After a run over two good and three failing feeds, /metrics (parsed by prometheus_client)
    counts each fetch outcome and error reason, the articles, the matches by rule and severity,
    the alerts sent and their latencies, an empty outbox and the feeds' health; a second round
    of 304s is counted as not modified; the token guards all but /healthz."""
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = write_config(tmp_path, feeds, f"json://{sink.url}/alerts", db_url)
    daemon = Daemon(App.load(config))
    started = datetime.now(UTC)
    running = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: daemon.web is not None and daemon.web.port, timeout=15)
        assert daemon.web is not None
        base = f"http://127.0.0.1:{daemon.web.port}"
        async with aiohttp.ClientSession() as client:
            # The round is through once its five polls and three alerts are recorded.
            await scrape_until(
                client,
                base,
                lambda s: (
                    total(s, "monitor_fetches_total") >= 5
                    and total(s, "monitor_deliveries_total", status="sent") >= 3
                ),
                timeout=30,
            )
            finished = datetime.now(UTC)
            content_type, samples = await scrape(client, base)
            assert content_type == "text/plain; version=0.0.4; charset=utf-8"
            check_first_round(samples, started, finished)
            assert len(sink.requests) == 3

            # A second round of the good feeds: their validators get 304s.
            with daemon.db.session() as session:
                for row in session.exec(select(FeedRow)).all():
                    if row.source_id in ("a", "b"):
                        row.next_check_at = datetime.now(UTC)
                        session.add(row)
            samples = await scrape_until(
                client,
                base,
                lambda s: (value(s, "monitor_fetches_total", outcome="not_modified") or 0) >= 2,
                timeout=20,
            )
            assert labelled(samples, "monitor_fetches_total") == {
                ("ok",): 2,
                ("error",): 3,
                ("not_modified",): 2,
            }
            assert value(samples, "monitor_articles_ingested_total", kind="new") == 5
            await check_access(client, base)
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(running, timeout=15) == 0
    with daemon.db.session() as session:
        statuses = [row.status for row in session.exec(select(DeliveryRow)).all()]
    assert statuses == ["sent"] * 3


async def test_readyz_names_each_failing_check(tmp_path: Path) -> None:
    """Before its scheduler starts, with only a disabled rule and a database that refuses
    connections, /readyz answers 503 naming all three checks; /healthz still answers 200."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "off.yaml").write_text(
        "rules:\n  - {id: unrest, name: Protests, keywords: [protesters], enabled: false}\n",
        encoding="utf-8",
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: 'postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test'\n"
        "rules: rules\nchannels: [{id: desk, url: 'console://'}]\nnotify: [desk]\n"
        f"http: {{listen: '127.0.0.1:{free_port()}'}}\nsources: []\n",
        encoding="utf-8",
    )
    daemon = Daemon(App.load(config))
    assert daemon.web is not None
    await daemon.web.start()
    try:
        base = f"http://127.0.0.1:{daemon.web.port}"
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/readyz") as answer:
                assert answer.status == 503
                body = await answer.json()
            async with client.get(f"{base}/healthz") as answer:
                assert answer.status == 200
            async with client.get(f"{base}/metrics") as answer:
                assert answer.status == 200
                samples = parse(await answer.text())
    finally:
        await daemon.web.stop()
        daemon.db.dispose()
    assert body == {
        "ready": False,
        "checks": {
            "database": "unreachable",
            "rules": "no enabled rule",
            "scheduler": "not running",
        },
    }
    # A scrape still succeeds without the database: the counters, and the database marked down.
    assert value(samples, "monitor_database_up") == 0
    assert value(samples, "monitor_fetches_total", outcome="ok") == 0
    assert value(samples, "monitor_outbox_depth", channel="desk", status="pending") is None


def collect(collector: DatabaseCollector) -> Samples:
    registry = Metrics().registry
    registry.register(collector)
    return parse(generate_latest(registry).decode())


async def test_database_gauges_read_the_outbox_and_the_feeds(db: Database, tmp_path: Path) -> None:
    """On SQLite and PostgreSQL, the collector counts each channel's pending and dead
    deliveries and the age of its oldest pending one, the configured feeds in each health state
    as `monitor sources` tells them, and how far behind schedule the due feeds are."""
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    desk = insert_deliveries(db, "desk", 3, at=now - timedelta(minutes=10))
    insert_deliveries(db, "desk", 1, at=now - timedelta(minutes=2))
    [dead] = insert_deliveries(db, "pager", 1, at=now - timedelta(hours=3))
    [sent] = insert_deliveries(db, "desk", 1, at=now - timedelta(hours=5))
    with db.session() as session:
        for delivery_id, state in ((desk[0], "dead"), (dead, "dead"), (sent, "sent")):
            row = session.get(DeliveryRow, delivery_id)
            assert row is not None
            row.status = state
            session.add(row)
    week = timedelta(days=7)
    feeds = [
        FeedRow(source_id="new", url="https://a.example/1", next_check_at=now),
        FeedRow(
            source_id="ok-due",
            url="https://a.example/2",
            next_check_at=now - timedelta(seconds=90),
            last_success_at=now - timedelta(hours=1),
            last_item_at=now - timedelta(hours=2),
        ),
        FeedRow(
            source_id="ok",
            url="https://a.example/3",
            next_check_at=now + timedelta(minutes=5),
            last_success_at=now - timedelta(minutes=1),
            last_item_at=now - timedelta(days=1),
        ),
        FeedRow(
            source_id="failing",
            url="https://a.example/4",
            next_check_at=now - timedelta(seconds=30),
            last_success_at=now - timedelta(days=1),
            consecutive_failures=2,
        ),
        FeedRow(
            source_id="stale",
            url="https://a.example/5",
            next_check_at=now + timedelta(hours=1),
            last_success_at=now - timedelta(minutes=3),
            last_item_at=now - week - timedelta(hours=1),
        ),
        FeedRow(
            source_id="gone",
            url="https://a.example/6",
            disabled="HTTP 410 Gone",
            consecutive_failures=1,
        ),
        # No longer configured: its row stays, without a next check, and is not counted.
        FeedRow(source_id="retired", url="https://a.example/7", last_success_at=now),
    ]
    with db.session() as session:
        session.add_all(feeds)

    samples = collect(
        DatabaseCollector(
            db, channels=lambda: ["desk", "pager", "quiet"], stale_after=week, clock=lambda: now
        )
    )

    depth = {
        tuple(dict(labels).values()): found
        for (name, labels), found in samples.items()
        if name == "monitor_outbox_depth"
    }
    assert depth == {
        ("desk", "pending"): 3,
        ("desk", "dead"): 1,
        ("pager", "pending"): 0,
        ("pager", "dead"): 1,
        ("quiet", "pending"): 0,
        ("quiet", "dead"): 0,
    }
    ages = {
        dict(labels)["channel"]: found
        for (name, labels), found in samples.items()
        if name == "monitor_outbox_oldest_pending_age_seconds"
    }
    assert ages == {"desk": 600, "pager": 0, "quiet": 0}
    states = {
        dict(labels)["state"]: found
        for (name, labels), found in samples.items()
        if name == "monitor_feeds"
    }
    assert states == {"new": 1, "ok": 2, "failing": 1, "stale": 1, "disabled": 1}
    # The same states as feed health shows them.
    settings = Settings.model_validate(
        {
            "sources": [
                {"id": row.source_id, "type": "feed", "url": row.url}
                for row in feeds
                if row.source_id != "retired"
            ],
            "fetching": {"stale_after": "7d"},
        }
    )
    health = source_health(settings, {row.source_id: row for row in feeds}, {}, now)
    shown: dict[str, int] = {}
    for record in health:
        shown[record.status] = shown.get(record.status, 0) + 1
    assert {state: count for state, count in states.items() if count} == shown
    # new (due now), ok-due (90 s late) and failing (30 s late, its backoff over) are due.
    assert value(samples, "monitor_feeds_due") == 3
    assert value(samples, "monitor_feed_lag_seconds") == 90
    assert value(samples, "monitor_database_up") == 1


def test_fetch_error_reasons_are_a_fixed_set() -> None:
    """HTTP statuses are folded into their class, known reasons kept, anything else is other."""
    assert fetch_error_reason("http_404") == "http_4xx"
    assert fetch_error_reason("http_500") == "http_5xx"
    assert fetch_error_reason("not_a_feed") == "not_a_feed"
    assert fetch_error_reason("timeout") == "timeout"
    assert fetch_error_reason("http_4040") == "other"
    assert fetch_error_reason("https://evil.example/?q=1") == "other"


def test_rule_reloads_are_counted_in_each_daemons_own_registry() -> None:
    """rules_loaded sets the rule count and the reload time, rules_reload_failed counts a
    refusal; a second Metrics counts apart from the first."""
    first, second = Metrics(), Metrics()
    when = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    first.rules_loaded(7, at=when)
    first.rules_reload_failed()
    first.rules_reload_failed()
    samples = parse(generate_latest(first.registry).decode())
    assert value(samples, "monitor_rules_loaded") == 7
    assert value(samples, "monitor_rules_last_reload_timestamp_seconds") == when.timestamp()
    assert value(samples, "monitor_rules_reload_failures_total") == 2
    other = parse(generate_latest(second.registry).decode())
    assert value(other, "monitor_rules_reload_failures_total") == 0
    assert value(other, "monitor_rules_loaded") == 0
