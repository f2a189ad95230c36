"""Composition root: settings -> store, rules, channels, sources, pipeline, outbox, scheduler.

``App.load`` validates everything before anything starts, so a bad config stops the daemon at
start-up with every problem listed. ``Daemon.run`` wires the stages together: APScheduler scans
each folder on its interval, a watcher per folder reacts to file-system events, an APScheduler job
dispatches the feeds that are due (it only selects them; each poll is its own task), and the outbox
worker delivers. Every background task is named and watched; SIGTERM or Ctrl-C stops intake, lets
in-flight work finish within a grace period, and closes the database. Edits of the config and the
rules, and SIGHUP, reload them, sources included, without a restart (see :mod:`monitor.reload`);
a daily job purges old unmatched articles when ``retention`` is set (see :mod:`monitor.retention`).

Several daemons may run on one PostgreSQL database as replicas: each claims the feeds it polls and
the deliveries it sends under leases, and reads a folder only while no other replica does (see
docs/operations.md). Every time the daemon sets or compares (leases, due times, when a match was
made) comes from one clock, the database's (:mod:`monitor.store.clock`), so that replicas on
several hosts agree on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from monitor import settings as settings_module
from monitor.errors import ConfigError, SourceError
from monitor.matching.loader import RuleSet, load_rules
from monitor.metrics import Metrics
from monitor.notify.channels import Channel
from monitor.notify.outbox import Outbox
from monitor.notify.pacing import Rate
from monitor.notify.render import TemplateChoice, TemplateSet, override_names
from monitor.pipeline import CompiledRules, IngestResult, Pipeline
from monitor.reload import OutboxWorker, Reloader, ReloadStatus
from monitor.retention import run_retention
from monitor.settings import Settings
from monitor.sources.feed import FeedSources, Loaded, register_secrets
from monitor.sources.folder import FolderSource
from monitor.sources.parsing import DocumentPool
from monitor.sources.registry import SOURCE_TYPES
from monitor.store import repo
from monitor.store.claims import replica_id
from monitor.store.clock import DatabaseClock
from monitor.store.db import Database
from monitor.store.tables import FeedRow
from monitor.web.metrics import Probes, register_collectors
from monitor.web.reader import Reads, RulesStatus
from monitor.web.server import WebServer, build_app

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 8.0
"""Seconds in-flight work may take to finish after SIGTERM (within Docker's default 10 s)."""
DISPATCH_EVERY = 5.0
"""Seconds between two selections of due feeds."""
RETENTION_FIRST_RUN = 300.0
"""Seconds after start before the first retention run (then daily), so a daemon restarted more
often than daily still purges, and start-up is not slowed by it."""
CLOCK_SYNC_EVERY = 60.0
"""Seconds between two readings of the database's clock."""
DISPATCH_JOB = "_internal_feed_dispatch"
DOCUMENT_PARSERS = 2
"""Parser processes for the folders' files: one slow file does not hold up the other folders."""
FOLDER_BUSY_RETRY = 1.0
"""Seconds before the files of file-system events are tried again while their folder is being
read by another replica."""


def _folders(settings: Settings) -> list[settings_module.FolderSourceSettings]:
    return [s for s in settings.sources if isinstance(s, settings_module.FolderSourceSettings)]


def _feeds(settings: Settings) -> list[settings_module.FeedSourceSettings]:
    return [s for s in settings.sources if isinstance(s, settings_module.FeedSourceSettings)]


@dataclass
class App:
    """Everything loaded and validated from one config file."""

    settings: Settings
    rules: RuleSet
    channels: dict[str, Channel]
    config: Path | None = None
    """The config file it was loaded from: the daemon reloads it when it changes."""

    @classmethod
    def load(cls, config: Path) -> App:
        """Load the config, the rules and the channels; raise ConfigError with every problem."""
        channels: dict[str, Channel] = {}

        def build_channel(channel_id: str, url: str) -> None:
            # Raises ValueError naming the channel (never the URL) when Apprise cannot use it;
            # the config loader reports that at the URL's line.
            channels[channel_id] = Channel.from_url(channel_id, url)

        settings = settings_module.load(config, check_channel=build_channel)
        problems = []
        templates: TemplateSet | None = None
        try:
            templates = TemplateSet(settings.templates)
        except ConfigError as exc:
            problems += exc.problems
        try:
            rules = load_rules(
                settings.rules,
                channels=settings.channel_ids(),
                sources=settings.source_ids(),
                templates=override_names(settings.templates),
            )
        except ConfigError as exc:
            problems += exc.problems
        if problems:
            raise ConfigError(problems)
        assert templates is not None  # else a problem was raised above
        by_rule = {rule.id: rule.template for rule in rules.rules if rule.template is not None}
        for spec in settings.channels:
            channels[spec.id].templates = TemplateChoice(templates, spec.template, by_rule)
        return cls(settings, rules, channels, config)


def channel_rates(
    settings: Settings, channels: Mapping[str, Channel]
) -> dict[str, tuple[Rate, ...]]:
    """Each channel's pacing: its ``rate`` setting, else its service's documented limits."""
    return {
        spec.id: (spec.rate,) if spec.rate is not None else channels[spec.id].rates
        for spec in settings.channels
        if spec.id in channels
    }


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        settings = app.settings
        self.db = Database(settings.database)
        self.replica = replica_id()
        self.clock = DatabaseClock(self.db)
        # The daemon's own registry: several daemons in one process (tests) count apart.
        self.metrics = Metrics()
        self.metrics.rules_loaded(len(app.rules.rules))
        self._collector = register_collectors(
            self.metrics.registry,
            self.db,
            channels=lambda: list(self.app.channels),
            stale_after=settings.fetching.stale_after,
            clock=self.clock,
        )
        self.pipeline = Pipeline(
            self.db,
            CompiledRules.build(app.rules),
            clock=self.clock,
            policy=settings.policy(),
            metrics=self.metrics,
        )
        self.delivery = OutboxWorker(self.build_outbox(settings, app.channels))
        self.documents = DocumentPool(
            DOCUMENT_PARSERS,
            timeout=settings.fetching.parse_timeout.total_seconds(),
            memory_limit=settings.fetching.parse_memory,
        )
        """The parser processes that read the folders' files (started with the first file)."""
        self.sources: list[FolderSource] = [
            SOURCE_TYPES[source.type](source, self.pipeline, parsers=self.documents)
            for source in _folders(settings)
        ]
        feeds = _feeds(settings)
        self.feeds = self._feed_sources(settings, feeds) if feeds else None
        """None while no feed is configured (a reload may add the first)."""
        self._feeds_lock = asyncio.Lock()
        """Held while due feeds are selected, and while a reload stores and swaps in new
        feeds: a selection never sees the feeds' states and settings disagree."""
        self.web: WebServer | None = None
        self._scheduler: AsyncIOScheduler | None = None
        if settings.http is not None:
            reads = Reads(self.db, lambda: self.app.settings, self.rules_status, self.clock)
            probes = Probes(
                self.metrics.registry,
                self.db,
                rules_loaded=lambda: any(
                    rule.enabled for rule in self.pipeline.rules.ruleset.rules
                ),
                scheduler_running=lambda: bool(self._scheduler and self._scheduler.running),
            )
            web_app = build_app(
                settings.http,
                lambda: self.feeds,
                max_body=settings.fetching.max_body,
                reads=reads,
                probes=probes,
                token=self._http_token,
            )
            self.web = WebServer(web_app, settings.http)
        self.stop = asyncio.Event()
        # Scans run in threads; they check this between files so SIGTERM is not kept waiting.
        self._halt = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._polls: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        """Source id -> the event that stops its folder's watcher, and the watcher's task."""
        self._dispatching = False
        self._feed_backlog = False
        self.reloader = Reloader(self, App.load)
        """Hot reload; ``reloader.subscribe(callback)`` is told of every attempt."""
        self.reloader.subscribe(self._count_reload)

    @property
    def outbox(self) -> Outbox:
        """The running outbox (a reload that changes channels replaces it)."""
        return self.delivery.outbox

    @property
    def reload_status(self) -> ReloadStatus:
        """The last reload's outcome: for /api/rules, the dashboard and metrics."""
        return self.reloader.status

    def _count_reload(self, status: ReloadStatus) -> None:
        if status.ok:
            self.metrics.rules_loaded(status.rules, status.loaded_at)
        else:
            self.metrics.rules_reload_failed()

    def build_outbox(self, settings: Settings, channels: Mapping[str, Channel]) -> Outbox:
        return Outbox(
            self.db,
            channels,
            retry_for=settings.retry_for,
            retry_first=settings.retry_first,
            retry_max=settings.retry_max,
            lease=settings.delivery_lease,
            rates=channel_rates(settings, channels),
            bursts={channel.id: channel.burst for channel in settings.channels},
            metrics=self.metrics,
            clock=self.clock,
        )

    def _http_token(self) -> str | None:
        """The API's token in force (a reload may rotate it), read at each request."""
        http = self.app.settings.http
        return http.token if http is not None else None

    def _feed_sources(
        self, settings: Settings, feeds: list[settings_module.FeedSourceSettings]
    ) -> FeedSources:
        return FeedSources(
            feeds,
            settings.fetching,
            self.db,
            self.pipeline,
            public_url=settings.public_url,
            metrics=self.metrics,
            clock=self.clock,
            holder=self.replica,
        )

    # -- sources changed by a reload ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def sources_held(self) -> AsyncIterator[None]:
        """While held, no due feed is selected: a reload holds it from :meth:`stage_sources`
        to :meth:`swap_sources`."""
        async with self._feeds_lock:
            yield

    async def stage_sources(self, settings: Settings) -> FeedSources | None:
        """The part of a source change that waits, done before the swap (holding
        :meth:`sources_held`): the feeds of ``settings`` get their state rows, the rows of
        feeds no longer configured are retired (:meth:`FeedSources.sync`). Returns the feed
        sources :meth:`swap_sources` reconfigures: the running ones, a new one when the daemon
        has none yet and ``settings`` lists feeds, else None. A database error is raised, the
        running sources left as they were."""
        feeds = _feeds(settings)
        # Before anything can quote them (a database error naming a new feed's URL).
        register_secrets(feeds)
        target = self.feeds
        if target is None:
            if not feeds:
                return None
            target = self._feed_sources(settings, [])
        try:
            await asyncio.to_thread(target.sync, feeds)
        except BaseException:
            if target is not self.feeds:
                await target.close()
            raise
        return target

    def swap_sources(self, settings: Settings, feeds: FeedSources | None) -> None:
        """Run the sources of ``settings`` from now on (in the event loop; nothing here waits,
        so the rules, the policy and the sources swapped with them agree at every moment).

        Folders: an unchanged folder keeps its scan job and its watcher, so it misses nothing;
        a removed one loses both (a scan or a read in flight finishes); a new or changed one
        gets them, its first scan at once, which reads whatever arrived meanwhile. Feeds:
        ``feeds`` (from :meth:`stage_sources`) take the new feeds and fetch settings, and are
        dispatched at once."""
        running = {source.id: source for source in self.sources}
        sources: list[FolderSource] = []
        started: list[FolderSource] = []
        for spec in _folders(settings):
            source = running.get(spec.id)
            if source is None or source.settings != spec:
                source = SOURCE_TYPES[spec.type](spec, self.pipeline, parsers=self.documents)
                started.append(source)
            sources.append(source)
        kept = {id(source) for source in sources}
        stopped = [source for source in self.sources if id(source) not in kept]
        self.sources = sources
        self.documents.timeout = settings.fetching.parse_timeout.total_seconds()
        self._collector.stale_after = settings.fetching.stale_after
        if feeds is not None:
            feeds.reconfigure(_feeds(settings), settings.fetching, public_url=settings.public_url)
        added_feeds = feeds is not None and self.feeds is None
        if added_feeds:
            self.feeds = feeds
        scheduler = self._scheduler
        if scheduler is None or self.stop.is_set():
            return  # not serving: the sources are scheduled when it starts
        for source in stopped:
            halt, _task = self._watchers.pop(source.id, (None, None))
            if halt is not None:
                halt.set()
            if source.id not in {s.id for s in started}:
                with contextlib.suppress(JobLookupError):
                    scheduler.remove_job(f"source:{source.id}")
        for source in started:
            self._schedule_folder(scheduler, source)
            self._start_watch(source)
        if feeds is not None:
            if added_feeds:
                self._schedule_feeds(scheduler, feeds)
            else:
                scheduler.modify_job(DISPATCH_JOB, next_run_time=datetime.now(UTC))
        if stopped or started:
            before, after = {s.id for s in stopped}, {s.id for s in started}
            log.info(
                "folders: %d added, %d changed, %d removed (%s)",
                len(after - before),
                len(after & before),
                len(before - after),
                ", ".join(sorted(before | after)),
                extra={"stage": "reload"},
            )

    def _schedule_folder(self, scheduler: AsyncIOScheduler, source: FolderSource) -> None:
        scheduler.add_job(
            self.poll,
            "interval",
            args=[source],
            seconds=source.settings.interval.total_seconds(),
            id=f"source:{source.id}",
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
            jitter=5,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _schedule_feeds(self, scheduler: AsyncIOScheduler, feeds: FeedSources) -> None:
        scheduler.add_job(
            self._dispatch_feeds,
            "interval",
            args=[feeds],
            seconds=DISPATCH_EVERY,
            id=DISPATCH_JOB,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        self._spawn("feed-claims", feeds.keep_claims(self.stop))

    def _start_watch(self, source: FolderSource) -> None:
        if not source.settings.watch:
            return
        halt = asyncio.Event()
        task: asyncio.Task[None] = asyncio.create_task(
            self._watch(source, halt), name=f"watch:{source.id}"
        )
        self._watchers[source.id] = (halt, task)
        self._tasks.append(task)

        def done(task: asyncio.Task[None]) -> None:
            if halt.is_set():  # stopped: its folder was removed or changed, or the daemon stops
                with contextlib.suppress(ValueError):
                    self._tasks.remove(task)
                return
            self._task_done(task)

        task.add_done_callback(done)

    def rules_status(self) -> RulesStatus:
        """The rules in use and the last reload's problems (the rules in use are then the last
        good ones), read by the web app at each request (``/api/rules``, the dashboard)."""
        status = self.reload_status
        return RulesStatus(self.pipeline.rules.ruleset.rules, status.problems, status.loaded_at)

    async def run(self, *, once: bool = False) -> int:
        """Run until stopped (or, with ``once``, poll every source and deliver, then return)."""
        log.info(
            "starting replica %s: %d rules, %d folders, %d feeds, %d channels, database %s",
            self.replica,
            len(self.app.rules.rules),
            len(self.sources),
            len(self.feeds or ()),
            len(self.app.channels),
            self.db.masked_url,
        )
        # From the start to the end, so a SIGHUP (`docker compose kill -s HUP`) to a replica
        # that is still starting, or stopping, does not kill it: it is a reload request, taken
        # up once the reloader runs.
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
            loop.add_signal_handler(signal.SIGHUP, self.reloader.request)
        try:
            await asyncio.to_thread(self.db.upgrade)
            skew = await asyncio.to_thread(self.clock.sync)
            if skew is not None:
                log.info("the database's clock is %+.3f s off this host's", skew.total_seconds())
            loaded = await asyncio.to_thread(self.feeds.sync) if self.feeds is not None else []
            if once:
                for source in self.sources:
                    await self._scan(source)
                if self.feeds is not None:
                    await self._poll_all_feeds(self.feeds, loaded)
                report = await self.outbox.deliver_due()
                log.info(
                    "done: %d sent, %d failed, %d deferred, %d dead",
                    report.sent,
                    report.failed,
                    report.deferred,
                    report.dead,
                )
                return 0
            return await self._serve()
        finally:
            if self.feeds is not None:
                await self.feeds.close()
            self.documents.close()
            self.db.dispose()
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.remove_signal_handler(signal.SIGHUP)

    async def _poll_all_feeds(self, feeds: FeedSources, loaded: list[Loaded]) -> None:
        """Poll every enabled feed once (``run --once``): a healthy feed whatever its next check
        time (a conditional request costs little), a failing one only when its backoff or the
        server's Retry-After has passed. A feed another replica is polling is left to it."""
        now = feeds.clock()

        def wanted(state: FeedRow) -> bool:
            backing_off = state.consecutive_failures > 0 and (state.next_check_at or now) > now
            return not state.disabled and not backing_off

        total = IngestResult()

        def done(result: IngestResult) -> None:
            nonlocal total
            self._after_ingest(result)
            total += result

        started = time.monotonic()
        selected = [item[0].source_id for item in loaded if wanted(item[0])]
        polled = await feeds.poll_listed(selected, done)
        log.info(
            "feeds: %d polled in %.1f s, %d new articles, %d matches",
            polled,
            time.monotonic() - started,
            total.new,
            len(total.match_ids),
        )

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self.stop.set)
        scheduler = self._scheduler = AsyncIOScheduler(timezone=UTC)
        for source in self.sources:
            self._schedule_folder(scheduler, source)
        scheduler.add_job(
            self._purge,
            "interval",
            days=1,
            id="_internal_retention",
            next_run_time=datetime.now(UTC) + timedelta(seconds=RETENTION_FIRST_RUN),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            self._sync_clock,
            "interval",
            seconds=CLOCK_SYNC_EVERY,
            id="_internal_clock_sync",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        if self.web is not None:
            await self.web.start()  # first: a port in use stops the daemon before any job runs
        scheduler.start()
        self._spawn("outbox", self.delivery.run(self.stop))
        if self.feeds is not None:
            self._schedule_feeds(scheduler, self.feeds)
        for source in self.sources:
            self._start_watch(source)
        self._spawn("reload", self.reloader.run(self.stop))
        log.info("running; press Ctrl-C to stop")
        await self.stop.wait()
        log.info("stopping")
        self._halt.set()
        for halt, _task in self._watchers.values():
            halt.set()
        scheduler.shutdown(wait=False)
        # The HTTP server stops taking requests now, its pushed documents finishing alongside
        # the other in-flight work: one grace period for all, within Docker's 10 s.
        stopping_web = (
            asyncio.create_task(self.web.stop(SHUTDOWN_GRACE - 1.0), name="web-stop")
            if self.web is not None
            else None
        )
        _done, pending = await asyncio.wait([*self._tasks, *self._polls], timeout=SHUTDOWN_GRACE)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if stopping_web is not None:
            await stopping_web
        return 0

    async def _sync_clock(self) -> None:
        try:
            await asyncio.to_thread(self.clock.sync)
        except SQLAlchemyError as exc:
            # The last reading stays in use: it drifts by microseconds a minute.
            log.warning("database clock not read: %s", exc, extra={"stage": "clock"})

    def _spawn(self, name: str, coroutine: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)  # type: ignore[arg-type]
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stop.is_set():
            return
        error = task.exception()
        log.error("background task %s ended unexpectedly: %r; stopping", task.get_name(), error)
        self.stop.set()

    async def _dispatch_feeds(self, feeds: FeedSources) -> None:
        """The dispatcher: select due feeds and start a poll task for each; it fetches nothing
        itself. In-flight polls are capped so a backlog waits in the database, not in memory."""
        if self.stop.is_set() or self._dispatching:
            return
        self._dispatching = True
        try:
            async with self._feeds_lock:
                room = 2 * feeds.fetching.concurrency - len(feeds.in_flight)
                selected = await asyncio.to_thread(feeds.due, room)
                # A full selection means more may be due: the next one comes as soon as polls
                # make room, not at the next tick (a backlog of thousands would take minutes).
                self._feed_backlog = room > 0 and len(selected) == room
                for loaded in selected:
                    source_id = loaded[0].source_id
                    feeds.in_flight.add(source_id)  # not selected again before its task starts
                    self._track(self._poll_feed(feeds, source_id, loaded), f"feed:{source_id}")
        finally:
            self._dispatching = False

    async def _poll_feed(self, feeds: FeedSources, source_id: str, loaded: Loaded) -> IngestResult:
        result = await feeds.poll(source_id, loaded)
        self._after_ingest(result)
        if self._feed_backlog and len(feeds.in_flight) <= feeds.fetching.concurrency:
            self._track(self._dispatch_feeds(feeds), "feed-dispatch")
        return result

    def _track(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        """Start a task that shutdown waits for (or cancels after the grace period)."""
        task = asyncio.create_task(coroutine, name=name)
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _purge(self) -> None:
        """The retention job, as a task shutdown waits for; reads the setting at each run."""
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
            task.add_done_callback(self._polls.discard)
        await run_retention(self.db, self.app.settings.retention, self._halt)

    async def poll(self, source: FolderSource) -> IngestResult:
        """The scheduler's job: scan one source, as a task shutdown waits for."""
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
            task.add_done_callback(self._polls.discard)
        return await self._scan(source)

    async def _scan(self, source: FolderSource) -> IngestResult:
        """Scan one source; its errors are recorded and logged, never raised."""
        error: str | None = None
        result = IngestResult()
        try:
            result = await asyncio.to_thread(source.scan, self._halt)
        except SourceError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"unexpected error: {exc!r}"
            log.exception(
                "source %s failed", source.id, extra={"source_id": source.id, "stage": "source"}
            )
        await asyncio.to_thread(self._record_poll, source, error)
        self._after_ingest(result)
        return result

    def _record_poll(self, source: FolderSource, error: str | None) -> None:
        with self.db.session() as session:
            changed = repo.record_poll(session, source.id, source.kind, self.clock(), error)
        extra = {"source_id": source.id, "stage": "source"}
        if changed and error:
            log.error("source %s failing: %s", source.id, error, extra=extra)
        elif changed:
            log.info("source %s healthy again", source.id, extra=extra)

    def _after_ingest(self, result: IngestResult) -> None:
        if result.new or result.updated or result.match_ids:
            log.info(
                "ingested %d new, %d updated articles; %d matches",
                result.new,
                result.updated,
                len(result.match_ids),
            )
        if result.match_ids:
            self.outbox.wake()

    async def _read(self, source: FolderSource, paths: list[Path], halt: asyncio.Event) -> None:
        """Read the files of file-system events; while another replica (or this one's scan) is
        reading the folder, try again each second (what it read already is skipped then)."""
        while (result := await asyncio.to_thread(source.read, paths, self._halt)) is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), timeout=FOLDER_BUSY_RETRY)
            if halt.is_set():
                return
        self._after_ingest(result)

    async def _watch(self, source: FolderSource, halt: asyncio.Event) -> None:
        """Follow file-system events under a folder until ``halt`` is set (the daemon stops, or
        a reload removed or changed the source); restart the watch on errors."""
        delay = 1.0
        restarted = False
        while not halt.is_set():
            try:
                if source.root.is_dir():
                    if restarted:
                        # The folder was replaced or reappeared: read what it holds now.
                        await self._scan(source)
                    async for paths in source.changes(halt):
                        delay = 1.0
                        await self._read(source, paths, halt)
                    restarted = True
            except Exception:
                log.exception(
                    "watching %s failed",
                    source.root,
                    extra={"source_id": source.id, "stage": "watch"},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)
