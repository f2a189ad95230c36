"""``/metrics`` (Prometheus text format 0.0.4) and ``/readyz``, and the collector that reads the
database's gauges when Prometheus scrapes.

A scrape runs the collection in a thread (the database collector queries), one scrape at a time,
so neither a slow database nor a burst of scrapes blocks the event loop or takes every worker
thread. When the database does not answer, the scrape still succeeds: the in-process counters are
served and ``monitor_database_up`` is 0.

``/readyz`` answers 200 when the database answers ``SELECT 1``, an enabled rule is loaded and the
scheduler runs; else 503, naming the checks that failed. Its body is small JSON:
``{"ready": true, "checks": {"database": "ok", "rules": "ok", "scheduler": "ok"}}``. A failed
check's text is fixed (never an exception's message, which may name hosts or users).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from sqlalchemy import text

from monitor.logs import redact
from monitor.store import stats
from monitor.store.db import Database
from monitor.store.repo import DEAD, PENDING
from monitor.store.tables import utcnow

__all__ = ["DatabaseCollector", "Probes", "add_routes", "register_collectors"]

log = logging.getLogger(__name__)

READY_TIMEOUT = 3.0
"""Seconds the database has to answer /readyz's SELECT 1."""


class DatabaseCollector(Collector):
    """The gauges kept in the database, read at each scrape (two aggregate queries, see
    :mod:`monitor.store.stats`). The channels configured now (``channels()``, so a reload that
    adds or removes one is seen) without pending or dead deliveries are shown at 0 rather than
    absent, and every feed state is shown, so alerts can compare. Ages and lags are measured on
    ``clock``, the one the daemon writes its times with (the database's)."""

    def __init__(
        self,
        db: Database,
        *,
        channels: Callable[[], Collection[str]],
        stale_after: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.channels = channels
        self.stale_after = stale_after
        self.clock = clock
        self._failing = False

    def describe(self) -> Iterator[Metric]:
        """The families :meth:`collect` yields, without samples (and without a query)."""
        yield _database_up()
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Blocking: query the database (see the class docstring)."""
        up = _database_up()
        now = self.clock()
        try:
            with self.db.reading() as session:
                depth = stats.outbox_depth(session)
                feeds = stats.feed_stats(session, now, self.stale_after)
        except Exception as exc:  # noqa: BLE001 (a scrape reports the database down, never fails)
            if not self._failing:
                log.warning(
                    "metrics: the database did not answer: %s",
                    redact(f"{type(exc).__name__}: {exc}".splitlines()[0]),
                    extra={"stage": "metrics"},
                )
            self._failing = True
            up.add_metric([], 0)
            yield up
            return
        if self._failing:
            log.info("metrics: the database answers again", extra={"stage": "metrics"})
        self._failing = False
        up.add_metric([], 1)
        yield up
        yield from self._families(depth, feeds, now)

    def _families(
        self,
        depth: list[stats.OutboxDepth] | None = None,
        feeds: stats.FeedStats | None = None,
        now: datetime | None = None,
    ) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "monitor_outbox_depth",
            "Deliveries not sent, by channel and status: pending (due now, waiting for a retry "
            "or for a digest's time) and dead.",
            labels=["channel", "status"],
        )
        oldest = GaugeMetricFamily(
            "monitor_outbox_oldest_pending_age_seconds",
            "Age of each channel's oldest pending delivery (0 when it has none).",
            labels=["channel"],
        )
        by_state = GaugeMetricFamily(
            "monitor_feeds",
            "Configured feeds by health state (as `monitor sources` shows them).",
            labels=["state"],
        )
        due = GaugeMetricFamily(
            "monitor_feeds_due",
            "Feeds whose next check has come: being polled, or waiting for a fetch slot.",
        )
        lag = GaugeMetricFamily(
            "monitor_feed_lag_seconds",
            "How far behind schedule the most overdue feed is (0 when none is due).",
        )
        if depth is not None and feeds is not None and now is not None:
            configured = tuple(self.channels())
            counts = {(channel, status): 0 for channel in configured for status in (PENDING, DEAD)}
            ages = dict.fromkeys(configured, 0.0)
            for row in depth:
                counts[row.channel, row.status] = row.count
                if row.status == PENDING and row.oldest is not None:
                    ages[row.channel] = max(0.0, (now - row.oldest).total_seconds())
            for (channel, status), count in sorted(counts.items()):
                queued.add_metric([channel, status], count)
            for channel, age in sorted(ages.items()):
                oldest.add_metric([channel], age)
            for state in stats.FEED_STATES:
                by_state.add_metric([state], feeds.states.get(state, 0))
            due.add_metric([], feeds.due)
            behind = (now - feeds.oldest_due).total_seconds() if feeds.oldest_due else 0.0
            lag.add_metric([], max(0.0, behind))
        yield from (queued, oldest, by_state, due, lag)


def _database_up() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "monitor_database_up", "1 when the database answered this scrape's queries, else 0."
    )


def register_collectors(
    registry: CollectorRegistry,
    db: Database,
    *,
    channels: Callable[[], Collection[str]],
    stale_after: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> DatabaseCollector:
    """Add what a daemon's registry reads at scrape time: the database's gauges (see
    :class:`DatabaseCollector`, returned: a reload sets its ``stale_after``), and the process's
    CPU, memory and open files (prometheus_client's ``process_*``)."""
    collector = DatabaseCollector(db, channels=channels, stale_after=stale_after, clock=clock)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return collector


@dataclass(frozen=True)
class Probes:
    """What ``/metrics`` and ``/readyz`` read from the daemon."""

    registry: CollectorRegistry
    db: Database
    rules_loaded: Callable[[], bool]
    """True while the rule set in use has an enabled rule."""
    scheduler_running: Callable[[], bool]


def add_routes(app: web.Application, probes: Probes) -> None:
    """Add ``GET /metrics`` and ``GET /readyz`` to ``app`` (see the module docstring)."""
    scraping = asyncio.Lock()
    database_failing = False
    # One ping at a time: probes of a database that hangs wait on the same one instead of
    # each taking a worker thread the daemon needs.
    pinging: asyncio.Future[None] | None = None

    async def metrics(_request: web.Request) -> web.Response:
        async with scraping:
            body = await asyncio.to_thread(generate_latest, probes.registry)
        response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
        response.enable_compression()
        return response

    def ping() -> None:
        with probes.db.reading() as session:
            session.execute(text("SELECT 1"))

    async def database() -> str:
        nonlocal database_failing, pinging
        if pinging is None or pinging.done():
            pinging = asyncio.ensure_future(asyncio.to_thread(ping))
            # Its outcome is read here, or dropped once a probe stopped waiting for it.
            pinging.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.wait_for(asyncio.shield(pinging), READY_TIMEOUT)
        except TimeoutError:
            answer, detail = "no answer", f"no answer within {READY_TIMEOUT:g} s"
        except Exception as exc:  # noqa: BLE001 (any failure means "not ready")
            answer, detail = "unreachable", f"{type(exc).__name__}: {exc}".splitlines()[0]
        else:
            if database_failing:
                log.info("readyz: the database answers again", extra={"stage": "readyz"})
            database_failing = False
            return "ok"
        if not database_failing:
            log.warning("readyz: the database fails: %s", redact(detail), extra={"stage": "readyz"})
        database_failing = True
        return answer

    async def readyz(_request: web.Request) -> web.Response:
        checks = {
            "database": await database(),
            "rules": "ok" if probes.rules_loaded() else "no enabled rule",
            "scheduler": "ok" if probes.scheduler_running() else "not running",
        }
        ready = all(value == "ok" for value in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
