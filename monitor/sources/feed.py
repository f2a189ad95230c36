"""Feed sources: fetch -> parse (worker process) -> pipeline, with each feed's state kept in the
database so a restart resumes where it stopped.

``FeedSources`` owns every feed of the config. Its :meth:`due` only *selects* feeds whose next
check has come (the dispatcher); :meth:`poll` does one feed's whole round. A poll never raises:
a fetch or parse failure is recorded on the feed (reason, message, consecutive failures, next
check with backoff), logged once when the feed's health changes, and the other feeds go on.

Replicas: several daemons may share one database, and then share its feeds. Selecting a feed
claims it for this replica under a lease (``fetching.lease``, see :mod:`monitor.store.claims`),
renewed by :meth:`keep_claims` while the poll lasts, and saving its outcome releases the claim,
only while the claim still stands: a poll whose lease ran out (its replica stalled) and whose feed
another replica took over logs "lease lost" and drops its outcome. A poll sends its request only
while the exchange and its parse fit in its lease, so two replicas never fetch one feed at once.
Times are the database's (``clock``, a :class:`~monitor.store.clock.DatabaseClock` in the
daemon), so replicas agree on them.

Identity: an entry's key is its GUID; without one, its canonical URL; without either, a digest of
its title and text. The feed's new state (ETag, Last-Modified, next check, a confirmed new URL) is
saved in the same transaction as its articles, so a crash between the two can neither lose entries
(validators saved, articles not) nor fetch them twice as new.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from monitor.errors import SourceError
from monitor.identity import canonical_url
from monitor.logs import redact, register_values
from monitor.metrics import Metrics
from monitor.models import Article
from monitor.pipeline import IngestResult, Pipeline, Unit
from monitor.settings import FeedSourceSettings, FetchSettings
from monitor.sources import schedule, websub
from monitor.sources.fetcher import Fetcher, FetchLimits, FetchTooLate, Response
from monitor.sources.health import display_url, url_secrets
from monitor.sources.parsing import ParsedFeed, ParserPool
from monitor.store import claims, locks, repo
from monitor.store.claims import LeaseLost
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, FeedRow, SubscriptionRow, utcnow

log = logging.getLogger(__name__)

Loaded = tuple[FeedRow, SubscriptionRow | None]
"""A feed's stored state and its WebSub subscription."""

_UNITS_PER_COMMIT = 20
"""Feeds stored in one transaction at most: enough to share a commit's sync to disk, few enough
that the transaction holds SQLite's write lock for well under a second."""

_MESSAGE_CHARS = 500
"""Error messages are kept this short: a hostile server chooses part of their text."""


def _newest(articles: Sequence[Article], now: datetime) -> datetime:
    """When the newest of ``articles`` was published (future dates ignored), else ``now``."""
    return max((a.published for a in articles if a.published and a.published <= now), default=now)


def entry_key(article: Article, identity: tuple[str, str | None] | None = None) -> str:
    """An entry's identity within its feed: GUID, else canonical URL, else a digest of its text
    (``identity``, when given, is the article's content hash and canonical URL)."""
    if article.guid:
        return article.guid[:1024]
    content_hash, url = identity or (article.content_hash, canonical_url(article.url))
    if url:
        return url
    return f"sha256:{content_hash}"


class FeedSources:
    """The feed sources of one daemon, with their fetcher and parser pool (see module doc)."""

    def __init__(
        self,
        feeds: Sequence[FeedSourceSettings],
        fetching: FetchSettings,
        db: Database,
        pipeline: Pipeline,
        *,
        public_url: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        holder: str | None = None,
    ) -> None:
        """``holder`` names this replica in its claims (a fresh :func:`claims.replica_id` by
        default); ``clock`` gives the times of claims and schedules."""
        self.feeds = {feed.id: feed for feed in feeds}
        self.metrics = metrics if metrics is not None else Metrics()
        """Counts each poll's outcome and each failure's reason."""
        register_secrets(feeds)
        self.public_url = public_url
        """Set: feeds that advertise a WebSub hub are subscribed to, with callbacks here."""
        self.fetching = fetching
        self.db = db
        self.pipeline = pipeline
        self.clock = clock
        self.holder = holder or claims.replica_id()
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self.fetcher = _fetcher(fetching)
        self._retired: dict[Fetcher, asyncio.Task[None]] = {}
        """Fetchers a reconfiguration replaced, each closing once its requests in flight end."""
        self._rewait = asyncio.Event()
        """Set by a reload that changes the lease: keep_claims renews at once, then at the new
        beat (a shorter lease must not wait out a third of the old one)."""
        self.parsers = ParserPool(
            fetching.parsers,
            timeout=fetching.parse_timeout.total_seconds(),
            memory_limit=fetching.parse_memory,
            max_items=fetching.max_items,
        )
        self.in_flight: set[str] = set()
        self._leases: dict[str, datetime] = {}
        """Source id -> when this replica's claim on it ends, for the feeds it has claimed."""
        self._claimed_any = False
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest")
        self._batch: tuple[list[FeedRow], asyncio.Future[None]] | None = None
        self._units: list[tuple[Unit, asyncio.Future[IngestResult]]] = []
        self._ingesting = False
        self._saving = False

    def __len__(self) -> int:
        return len(self.feeds)

    def timing(self, feed: FeedSourceSettings) -> schedule.Timing:
        return schedule.Timing(
            min_interval=self.fetching.min_interval,
            max_interval=self.fetching.max_interval,
            fixed=feed.interval,
        )

    def reconfigure(
        self,
        feeds: Sequence[FeedSourceSettings],
        fetching: FetchSettings,
        *,
        public_url: str | None,
    ) -> None:
        """Poll ``feeds`` with ``fetching`` from now on (a hot reload; in the event loop, nothing
        here waits). Call it after :meth:`sync` with the same ``feeds``, with no selection by
        :meth:`due` in between, so the stored states match the feeds selected from them.

        A poll in flight finishes with the settings it started with; a feed no longer listed is
        not selected again (its state is kept, retired as :meth:`sync` leaves it). New fetch
        limits take a new fetcher, the old one closing once its requests in flight end. The
        parser pool takes the new parse timeout and item cap; its size and its processes'
        memory limit are set at start (the caller keeps ``parsers`` and ``parse_memory`` as
        they were)."""
        register_secrets(feeds)
        self.feeds = {feed.id: feed for feed in feeds}
        self.public_url = public_url
        if _limits(fetching) != _limits(self.fetching):
            old, self.fetcher = self.fetcher, _fetcher(fetching)
            task = asyncio.create_task(old.close_when_idle(), name="fetcher:retire")
            self._retired[old] = task
            task.add_done_callback(lambda _task: self._retired.pop(old, None))
        if fetching.lease != self.fetching.lease:
            self._rewait.set()
        self.parsers.timeout = fetching.parse_timeout.total_seconds()
        self.parsers.max_items = fetching.max_items
        self.fetching = fetching

    # -- state (blocking: run in a thread) ----------------------------------------------------

    def sync(self, feeds: Sequence[FeedSourceSettings] | None = None) -> list[Loaded]:
        """Give every configured feed (``feeds``, else those polled now) a state row; start
        afresh a feed whose URL the config changed; retire (stop scheduling) rows of feeds no
        longer configured. Returns every configured feed's state and subscription, in config
        order."""
        configured = {feed.id: feed for feed in feeds} if feeds is not None else self.feeds
        now = self.clock()
        with self.db.session() as session:
            # Replicas starting together sync one at a time: each finds the rows of the others.
            locks.wait_in_transaction(session.connection(), "feeds")
            rows = {row.source_id: row for row in session.exec(select(FeedRow)).all()}
            states: dict[str, FeedRow] = {}
            for feed in configured.values():
                row = rows.get(feed.id)
                if row is not None and row.url != feed.url:
                    session.delete(row)  # another feed now: its state starts afresh
                    session.flush()
                    row = None
                if row is None:
                    row = FeedRow(source_id=feed.id, url=feed.url, next_check_at=now)
                    session.add(row)
                elif row.next_check_at is None and not row.disabled:
                    row.next_check_at = now  # configured again
                    session.add(row)
                states[feed.id] = row
            for source_id, row in rows.items():
                if source_id not in configured and (row.next_check_at or row.disabled):
                    # Retired: no next check, and no longer disabled either, so that no health
                    # count keeps it (a feed configured again is tried afresh).
                    row.next_check_at = row.disabled = None
                    session.add(row)
            session.flush()
            subscriptions = repo.subscriptions(session, list(states))
            session.expunge_all()
        return [(row, subscriptions.get(source_id)) for source_id, row in states.items()]

    def due(self, limit: int) -> list[Loaded]:
        """Claim up to ``limit`` feeds whose next check has come, most overdue first, that no
        replica is polling (this one included), loaded with their subscriptions (one
        transaction)."""
        if limit <= 0:
            return []
        now = self.clock()
        with self.db.session() as session:
            rows = claims.claim_due(
                session,
                holder=self.holder,
                now=now,
                lease_until=now + self.fetching.lease,
                limit=limit,
                wanted=lambda source_id: (
                    source_id in self.feeds and source_id not in self.in_flight
                ),
                slack=len(self.in_flight),
            )
            subscriptions = repo.subscriptions(session, [row.source_id for row in rows])
            session.expunge_all()
        return self._claimed(rows, subscriptions)

    def claim(self, source_ids: Sequence[str]) -> list[Loaded]:
        """Claim those of ``source_ids`` that are configured, enabled and that no replica is
        polling, whatever their next check (a round of ``run --once``); loaded as by :meth:`due`."""
        now = self.clock()
        with self.db.session() as session:
            rows = claims.claim_listed(
                session,
                [source_id for source_id in source_ids if source_id in self.feeds],
                holder=self.holder,
                now=now,
                lease_until=now + self.fetching.lease,
            )
            subscriptions = repo.subscriptions(session, [row.source_id for row in rows])
            session.expunge_all()
        return self._claimed(rows, subscriptions)

    def _claimed(
        self, rows: Sequence[FeedRow], subscriptions: dict[str, SubscriptionRow]
    ) -> list[Loaded]:
        for row in rows:
            assert row.claimed_until is not None
            self._claimed_any = True
            self._leases[row.source_id] = row.claimed_until
            # The state a poll saves carries no claim: saving it releases the claim.
            row.claimed_by = row.claimed_until = None
        return [(row, subscriptions.get(row.source_id)) for row in rows]

    async def keep_claims(self, stop: asyncio.Event) -> None:
        """Renew the leases of the feeds this replica has claimed, every third of the lease,
        until ``stop`` is set: a live replica keeps its feeds however long its polls wait (for a
        fetch slot, a parser, the writer); only a dead or stalled one's claims run out. A
        database error is logged, and the next renewal tried as usual."""
        while not stop.is_set():
            every = self.fetching.lease.total_seconds() / 3  # a reload may change the lease
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._rewait.wait())]
            await asyncio.wait(waits, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            if self._rewait.is_set():
                # A reload changed the lease: claims are renewed at once, then on its own beat.
                self._rewait.clear()
            source_ids = list(self._leases)
            if stop.is_set() or not source_ids:
                continue
            until = self.clock() + self.fetching.lease
            try:
                renewed = await asyncio.to_thread(self._renew, source_ids, until)
            except SQLAlchemyError as exc:
                log.warning("feed claims not renewed: %s", exc, extra={"stage": "claim"})
                continue
            for source_id in renewed:
                if source_id in self._leases:  # its poll may have ended meanwhile
                    # As stored: earlier than before when a reload shortened the lease.
                    self._leases[source_id] = until

    def _renew(self, source_ids: list[str], until: datetime) -> set[str]:
        with self.db.session() as session:
            return claims.renew(session, self.holder, source_ids, until)

    def _release_all(self) -> None:
        """Release this replica's claims (at shutdown: its feeds need not wait for the leases
        to run out); a database error is logged, not raised."""
        try:
            with self.db.session() as session:
                released = claims.release_all(session, self.holder)
        except SQLAlchemyError as exc:
            log.warning("feed claims not released (they expire with their leases): %s", exc)
            return
        if released:
            log.info("released the claims of %d feeds not polled", released)

    def _load(self, source_id: str) -> Loaded:
        """The feed's state and its WebSub subscription, if any (one short transaction), without
        a claim: for what does not save the state (a hub's push)."""
        with self.db.session() as session:
            row = session.get(FeedRow, source_id)
            if row is None:
                row = FeedRow(source_id=source_id, url=self.feeds[source_id].url)
            subscription = session.get(SubscriptionRow, source_id)
            session.expunge_all()
            return row, subscription

    async def _save_state(self, row: FeedRow) -> None:
        """Save a feed's state (after a 304 or a failure) with others of the same moment: one
        transaction, one UPDATE statement, for every feed that finished while the previous
        save was being written (group commit), rather than a transaction (and an fsync) each.
        An idle writer starts at once, so a lone feed never waits for company. The state is
        saved only while the feed is still claimed by this replica."""
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None:
            batch = self._batch = ([], loop.create_future())
            if not self._saving:
                loop.call_soon(self._flush_states)  # after the feeds finishing in this tick
        batch[0].append(row)
        await asyncio.shield(batch[1])

    def _flush_states(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        rows, done = batch
        self._saving = True
        loop = asyncio.get_running_loop()
        saving = loop.run_in_executor(self._writer, self._save_many, rows)

        def finished(future: asyncio.Future[None]) -> None:
            self._saving = False
            if future.exception() is not None:
                done.set_exception(future.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)
            self._flush_states()  # what gathered meanwhile

        saving.add_done_callback(finished)

    def _save_many(self, rows: list[FeedRow]) -> None:
        latest = {row.source_id: row for row in rows}  # a feed twice in a batch: its last state
        with self.db.session() as session:
            kept = claims.held(session, self.holder, latest.keys())
            repo.save_feed_states(session, [latest[source_id] for source_id in sorted(kept)])
        for source_id in sorted(latest.keys() - kept):
            self._lease_lost(source_id)

    def _lease_lost(self, source_id: str) -> None:
        log.warning(
            "feed %s: lease lost: the claim ran out and another replica took the feed over, or "
            "a reload changed the feed's URL during the poll; this poll's outcome is dropped",
            source_id,
            extra={"source_id": source_id, "stage": "claim"},
        )

    def _holding(self, source_id: str) -> Callable[[Session], None]:
        """The ``hold`` of a feed's ingest: lock the feed's row, and store nothing (raise
        LeaseLost) unless the feed is still claimed by this replica."""

        def hold(session: Session) -> None:
            if not claims.held(session, self.holder, [source_id]):
                raise LeaseLost(source_id)

        return hold

    # -- one poll -------------------------------------------------------------------------------

    async def poll(self, source_id: str, loaded: Loaded | None = None) -> IngestResult:
        """Fetch, parse and ingest one feed under this replica's claim (its state and
        subscription as :meth:`due` or :meth:`claim` loaded them, else claimed here: nothing is
        done while another replica polls it). Failures are recorded on the feed, never raised;
        saving the outcome releases the claim."""
        feed = self.feeds.get(source_id)
        if feed is None:
            # Removed by a reload after its selection: its claim is released, the feed left
            # retired as sync() left it.
            try:
                if loaded is not None and self._leases.pop(source_id, None) is not None:
                    row = loaded[0]
                    row.next_check_at = None
                    await self._save_state(row)
            finally:
                self.in_flight.discard(source_id)  # the dispatcher marked it
            return IngestResult()
        self.in_flight.add(source_id)
        try:
            if loaded is None or source_id not in self._leases:
                claimed = await asyncio.to_thread(self.claim, [source_id])
                if not claimed:
                    return IngestResult()
                [loaded] = claimed
            row, subscription = loaded
            try:
                result = await self._poll(feed, row, subscription)
            except FetchTooLate:
                # Still due: saved unchanged, which releases the claim for the next selection
                # (unless a reload removed the feed meanwhile: it stays retired).
                log.info(
                    "feed %s: no fetch slot while its claim had time for a poll; released",
                    feed.id,
                    extra={"source_id": feed.id, "stage": "claim"},
                )
                self._retire_if_removed(feed, row)
            except LeaseLost:
                self._lease_lost(source_id)
                return IngestResult()
            except SourceError as exc:
                self._failed(feed, row, exc)
            except Exception as exc:
                log.exception(
                    "feed %s: unexpected error",
                    feed.id,
                    extra={"source_id": feed.id, "stage": "feed"},
                )
                self._failed(feed, row, SourceError(f"unexpected error: {exc!r}"))
            else:
                self.metrics.fetched("not_modified" if row.last_status == 304 else "ok")
                return result
            await self._save_state(row)
            return IngestResult()
        finally:
            self.in_flight.discard(source_id)
            self._leases.pop(source_id, None)

    async def poll_listed(
        self, source_ids: Sequence[str], done: Callable[[IngestResult], None]
    ) -> int:
        """Poll each of ``source_ids`` once (``run --once``), as many at a time as the
        dispatcher keeps in flight, claiming them a batch at a time as room frees up, so that
        each lease starts when its poll can. Feeds another replica is polling are left to it.
        ``done`` gets each poll's result; returns how many feeds were polled."""
        batch = self.fetching.concurrency
        room = asyncio.Semaphore(2 * batch)
        tasks: list[asyncio.Task[None]] = []

        async def poll(loaded: Loaded) -> None:
            try:
                result = await self.poll(loaded[0].source_id, loaded)
            finally:
                room.release()
            done(result)

        polled = 0
        done_claiming = asyncio.Event()
        keeper = asyncio.create_task(self.keep_claims(done_claiming))
        try:
            for start in range(0, len(source_ids), batch):
                listed = source_ids[start : start + batch]
                for _ in listed:
                    await room.acquire()
                claimed = await asyncio.to_thread(self.claim, listed)
                for _ in range(len(listed) - len(claimed)):
                    room.release()
                polled += len(claimed)
                tasks += [asyncio.create_task(poll(loaded)) for loaded in claimed]
            await asyncio.gather(*tasks)
        finally:
            done_claiming.set()
            await keeper
        return polled

    def _allow_private(self, feed: FeedSourceSettings) -> bool:
        return feed.allow_private or self.fetching.allow_private

    async def _poll(
        self, feed: FeedSourceSettings, row: FeedRow, subscription: SubscriptionRow | None
    ) -> IngestResult:
        url = row.current_url or feed.url
        if row.current_url:
            # A feed moved to a URL of its own (a signed one, say): it is masked as the
            # configured one is, also after a restart.
            register_values(url_secrets(row.current_url))
        # The request starts only while the exchange and its parse fit in what is left of the
        # claim, as renewed by the time a fetch slot is free (keep_claims renews it while the
        # poll waits for its host), so it never runs on after another replica could have
        # claimed the feed: should renewals stop (this replica cut off from the database), its
        # polls stop before the lease runs out.
        needed = self.fetching.timeout + self.fetching.parse_timeout
        loop = asyncio.get_running_loop()

        def start_by() -> float:
            lease = self._leases.get(feed.id)
            if lease is None:
                return -math.inf  # the claim is gone
            return loop.time() + (lease - self.clock() - needed).total_seconds()

        response = await self.fetcher.get(
            url,
            etag=row.etag,
            last_modified=row.last_modified,
            headers=feed.headers,
            allow_private=self._allow_private(feed),
            start_by=start_by,
        )
        now = self.clock()
        pushed = websub.subscribed(subscription, now)
        if response.status == 304:
            self._succeeded(feed, row, response, None, now, pushed=pushed)
            await self._save_state(row)
            if subscription is not None:  # renew a lease that is running out
                await self._subscribe(feed, subscription, subscription.hub, subscription.topic)
            return IngestResult()
        parsed = await self.parsers.parse(response.body, response.url)
        articles, identities = await self._entries(feed, parsed)
        if parsed.truncated:
            log.warning(
                "feed %s: %d entries beyond the cap of %d ignored",
                feed.id,
                parsed.truncated,
                self.fetching.max_items,
                extra={"source_id": feed.id, "stage": "parse"},
            )
        self._succeeded(feed, row, response, parsed, now, pushed=pushed)

        seen, last_item_at = row.items_seen, row.last_item_at

        def save(session: Session, result: IngestResult) -> None:
            # Set from the values before, not added to: a save may run twice (ingest_many).
            row.items_seen = seen + result.new
            row.last_item_at = _newest(articles, now) if result.new else last_item_at
            repo.save_feed_states(session, [row])

        result = await self._ingest(
            feed.id, articles, hold=self._holding(feed.id), save=save, identities=identities
        )
        found = websub.discover(parsed.hints, response.links, response.url)
        if self.public_url is not None and found is not None:
            await self._subscribe(feed, subscription, *found)
        return result

    async def _ingest(
        self,
        source_id: str,
        articles: list[Article],
        *,
        hold: Callable[[Session], None] | None = None,
        save: Callable[[Session, IngestResult], None] | None = None,
        identities: Sequence[tuple[str, str | None]] | None = None,
    ) -> IngestResult:
        """Ingest on the one writer thread: writes are serialised by the database anyway, and
        queueing them here wakes the next one at once, where threads waiting on SQLite's lock
        would poll for it, and would hold the threads that load the next feeds. (Matching on a
        thread of its own, ahead of the writer, was tried: the two threads' contention for the
        GIL cost more CPU than the overlap with commits saved, a 10,000-feed first fetch taking
        287 s instead of 240 s.)

        Feeds that finish while the writer is busy are stored together when it is free, in one
        transaction (:meth:`Pipeline.ingest_many`, at most :data:`_UNITS_PER_COMMIT`), as
        :meth:`_save_state` does for states; an idle writer starts at once."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[IngestResult] = loop.create_future()
        unit = Unit(source_id, articles, hold=hold, save=save, identities=identities)
        self._units.append((unit, done))
        if not self._ingesting:
            self._ingesting = True
            loop.call_soon(self._write_units)  # after the feeds finishing in this tick
        return await asyncio.shield(done)

    def _write_units(self) -> None:
        batch = self._units[:_UNITS_PER_COMMIT]
        del self._units[:_UNITS_PER_COMMIT]
        if not batch:
            self._ingesting = False
            return
        loop = asyncio.get_running_loop()
        writing = loop.run_in_executor(
            self._writer, self.pipeline.ingest_many, [unit for unit, _done in batch]
        )

        def finished(future: asyncio.Future[list[IngestResult | Exception]]) -> None:
            error = future.exception()
            outcomes: Sequence[IngestResult | BaseException | None] = (
                [error] * len(batch) if error is not None else future.result()
            )
            for (_unit, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, IngestResult):
                    done.set_result(outcome)
                else:
                    done.set_exception(outcome or RuntimeError("ingest failed"))
            self._write_units()  # what gathered meanwhile

        writing.add_done_callback(finished)

    # -- WebSub -------------------------------------------------------------------------------

    async def _subscribe(
        self, feed: FeedSourceSettings, current: SubscriptionRow | None, hub: str, topic: str
    ) -> None:
        """Ask ``hub`` for pushes of ``topic`` unless a subscription stands (see websub)."""
        now = self.clock()
        if self.public_url is None or not websub.needs_request(current, hub, topic, now):
            return
        request = SubscriptionRow(
            source_id=feed.id,
            hub=hub,
            topic=topic,
            secret=secrets.token_hex(32),
            state="requested",
            requested_at=now,
        )
        # Saved before asking: the hub may verify before its answer to the request arrives.
        await asyncio.to_thread(self._save_subscription, request)
        form = {
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.callback": websub.callback_url(self.public_url, feed.id),
            "hub.lease_seconds": str(int(websub.LEASE.total_seconds())),
            "hub.secret": request.secret,
        }
        extra = {"source_id": feed.id, "stage": "websub"}
        try:
            status, answer = await self.fetcher.post_form(
                hub, form, allow_private=self._allow_private(feed)
            )
        except SourceError as exc:
            status, answer = 0, str(exc)
        if 200 <= status < 300:
            log.info("feed %s: subscription requested from hub %s", feed.id, hub, extra=extra)
            return
        request.state, request.detail = "failed", f"hub answered {status}: {answer}"[:500]
        await asyncio.to_thread(self._save_subscription, request)
        log.warning("feed %s: hub %s refused: %s", feed.id, hub, request.detail, extra=extra)

    def _save_subscription(self, row: SubscriptionRow) -> None:
        with self.db.session() as session:
            session.merge(row)

    def verify_intent(
        self, source_id: str, mode: str, topic: str, lease_seconds: str | None
    ) -> bool:
        """A hub checks that we asked for this (blocking). True: echo the challenge."""
        now = self.clock()
        with self.db.session() as session:
            row = session.get(SubscriptionRow, source_id)
            if row is None or row.topic != topic or source_id not in self.feeds:
                return False
            if mode == "denied":
                row.state, row.detail = "denied", "the hub denied the subscription"
                log.warning("feed %s: hub denied the subscription", source_id)
                return True
            if mode != "subscribe" or row.state not in ("requested", "active"):
                return False
            seconds = (
                int(lease_seconds)
                if lease_seconds is not None and lease_seconds.isdigit()
                else websub.LEASE.total_seconds()
            )
            row.state = "active"
            row.lease_until = now + timedelta(seconds=min(seconds, 365 * 86400))
            session.add(row)
        log.info("feed %s: WebSub subscription active", source_id, extra={"source_id": source_id})
        return True

    async def push(self, source_id: str, body: bytes, signature: str | None) -> bool:
        """Content a hub pushed: ingested when its signature verifies, else ignored (False)."""
        feed = self.feeds.get(source_id)
        if feed is None:
            return False
        _row, subscription = await asyncio.to_thread(self._load, source_id)
        if subscription is None or subscription.state != "active":
            return False
        if not websub.signature_valid(subscription.secret, body, signature):
            log.warning(
                "feed %s: pushed content with a bad signature ignored",
                source_id,
                extra={"source_id": source_id, "stage": "websub"},
            )
            return False
        try:
            parsed = await self.parsers.parse(body, subscription.topic)
        except SourceError as exc:
            log.warning("feed %s: pushed content unreadable: %s", source_id, exc)
            return True
        articles, identities = await self._entries(feed, parsed)
        result = await self._ingest(feed.id, articles, identities=identities)
        await asyncio.to_thread(
            self._record_push, source_id, result, _newest(articles, self.clock())
        )
        return True

    def _record_push(self, source_id: str, result: IngestResult, newest: datetime) -> None:
        now = self.clock()
        with self.db.session() as session:
            subscription = session.get(SubscriptionRow, source_id)
            if subscription is not None:
                subscription.last_push_at = now
                session.add(subscription)
            row = session.get(FeedRow, source_id)
            if row is not None and result.new:
                row.items_seen += result.new
                row.last_item_at = newest
                session.add(row)

    async def _with_full_text(
        self, feed: FeedSourceSettings, articles: list[Article]
    ) -> list[Article]:
        """``articles`` with the main text of their pages as body, for the entries that carry
        only a summary. A page is fetched once: an entry already stored with the same title and
        summary keeps the text read then (so it is not a changed article at every poll). A page
        that cannot be fetched or read leaves its entry as it was."""
        wanted = [a for a in articles if a.url and not a.body]
        if not wanted:
            return articles
        stored = await asyncio.to_thread(self._stored, feed.id, [a.key for a in wanted])
        texts: dict[str, str] = {}
        pages = []
        for article in wanted:
            known = stored.get(article.key)
            if known is not None and (known.title, known.summary) == (
                article.title,
                article.summary,
            ):
                texts[article.key] = known.body
            else:
                pages.append(article)
        bodies = await asyncio.gather(*(self._page_text(feed, a) for a in pages))
        texts.update((a.key, body) for a, body in zip(pages, bodies, strict=True))
        return [replace(a, body=texts[a.key]) if texts.get(a.key) else a for a in articles]

    def _stored(self, source_id: str, keys: list[str]) -> dict[str, ArticleRow]:
        with self.db.session() as session:
            found = repo.find_articles(session, source_id, keys)
            session.expunge_all()
            return found

    async def _page_text(self, feed: FeedSourceSettings, article: Article) -> str:
        assert article.url is not None
        try:
            page = await self.fetcher.get(article.url, allow_private=self._allow_private(feed))
            return await self.parsers.extract(page.body) if page.status == 200 else ""
        except SourceError as exc:
            log.info(
                "feed %s: full text of %s not read: %s",
                feed.id,
                article.url,
                exc,
                extra={"source_id": feed.id, "stage": "full_text"},
            )
            return ""

    async def _entries(
        self, feed: FeedSourceSettings, parsed: ParsedFeed
    ) -> tuple[list[Article], tuple[tuple[str, str | None], ...] | None]:
        """A parsed feed's entries as this feed's articles, with the identities the parser
        computed for them (None once full text replaced their bodies)."""
        articles = [
            self._keyed(feed, article, identity)
            for article, identity in zip(parsed.articles, parsed.identities, strict=True)
        ]
        if feed.full_text:
            # An entry's body may be its page's text now: its content hash is computed again.
            return await self._with_full_text(feed, articles), None
        return articles, parsed.identities

    def _keyed(
        self,
        feed: FeedSourceSettings,
        article: Article,
        identity: tuple[str, str | None] | None = None,
    ) -> Article:
        tags = tuple(dict.fromkeys((*article.tags, *feed.tags)))
        return replace(
            article,
            source_id=feed.id,
            key=entry_key(article, identity),
            location=article.url,
            tags=tags,
        )

    def _succeeded(
        self,
        feed: FeedSourceSettings,
        row: FeedRow,
        response: Response,
        parsed: ParsedFeed | None,
        now: datetime,
        *,
        pushed: bool = False,
    ) -> None:
        if row.consecutive_failures:
            log.info(
                "feed %s healthy again after %d failures",
                feed.id,
                row.consecutive_failures,
                extra={"source_id": feed.id, "feed_url": feed.url, "stage": "fetch"},
            )
        if parsed is not None:
            # A move is remembered only once its target served a valid feed.
            if response.permanent_url:
                register_values(url_secrets(response.permanent_url))
                log.info(
                    "feed %s moved permanently; now reading %s",
                    feed.id,
                    display_url(response.permanent_url),
                    extra={"source_id": feed.id, "stage": "fetch"},
                )
                row.current_url = response.permanent_url
            posting = schedule.posting_interval((a.published for a in parsed.articles), now)
            if posting is not None:
                row.posting_interval = posting.total_seconds()
        row.etag = response.etag or (row.etag if response.status == 304 else None)
        row.last_modified = response.last_modified or (
            row.last_modified if response.status == 304 else None
        )
        row.last_checked_at = row.last_success_at = now
        row.last_status = response.status
        row.consecutive_failures = 0
        row.error_reason = None
        row.last_error = None
        posting_interval = (
            timedelta(seconds=row.posting_interval) if row.posting_interval is not None else None
        )
        timing = self._timing_now(feed)
        if pushed:
            # The hub pushes new content: polling is only the safety net.
            timing = replace(timing, fixed=self.fetching.max_interval)
        row.next_check_at = schedule.next_check(
            now,
            timing,
            posting=posting_interval,
            hints=parsed.hints if parsed is not None else None,
            max_age=response.max_age,
            rng=self.rng,
        )
        self._retire_if_removed(feed, row)

    def _failed(self, feed: FeedSourceSettings, row: FeedRow, error: SourceError) -> None:
        now = self.clock()
        reason = getattr(error, "reason", "error")
        self.metrics.fetch_failed(reason)
        message = redact(str(error))[:_MESSAGE_CHARS]
        row.consecutive_failures += 1
        row.last_checked_at = row.last_error_at = now
        row.last_status = getattr(error, "status", None)
        row.error_reason = reason
        row.last_error = message
        extra = {"source_id": feed.id, "feed_url": feed.url, "stage": "fetch", "reason": reason}
        if reason == "gone":
            row.disabled = message
            row.next_check_at = None
            log.warning("feed %s disabled: %s", feed.id, message, extra=extra)
        else:
            row.next_check_at = schedule.after_failure(
                now,
                self._timing_now(feed),
                row.consecutive_failures,
                retry_after=getattr(error, "retry_after", None),
                rng=self.rng,
            )
            if row.consecutive_failures == 1:
                log.warning(
                    "feed %s failing: %s (next try %s)",
                    feed.id,
                    message,
                    f"{row.next_check_at:%Y-%m-%d %H:%M:%S}Z",
                    extra=extra,
                )
            else:
                log.debug("feed %s still failing: %s", feed.id, message, extra=extra)
            self._retire_if_removed(feed, row)

    def _timing_now(self, feed: FeedSourceSettings) -> schedule.Timing:
        """The timing of ``feed`` as configured now: a poll that started before a reload
        schedules the next one with the reloaded interval."""
        return self.timing(self.feeds.get(feed.id, feed))

    def _retire_if_removed(self, feed: FeedSourceSettings, row: FeedRow) -> None:
        """A poll in flight when a reload removed its feed leaves it retired, as sync() did."""
        if feed.id not in self.feeds:
            row.next_check_at = None

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.parsers.close()
        await self.fetcher.close()
        retired = dict(self._retired)  # replaced by a reload, not closed yet
        for task in retired.values():
            task.cancel()
        await asyncio.gather(*retired.values(), return_exceptions=True)
        for fetcher in retired:
            await fetcher.close()
        if self._claimed_any:  # else there is nothing to release (nor maybe a database)
            await asyncio.to_thread(self._release_all)


def register_secrets(feeds: Sequence[FeedSourceSettings]) -> None:
    """A feed URL's secrets (a password, a ?token=) and its request headers (Authorization:
    Bearer ...) never show in logs or in the errors kept in feed health. (Only a URL with a user
    part or a query is parsed: with thousands of feeds, start-up time counts.)"""
    for feed in feeds:
        hidden = url_secrets(feed.url) if "@" in feed.url or "?" in feed.url else []
        register_values([*hidden, *feed.headers.values()])


def _limits(fetching: FetchSettings) -> tuple[FetchLimits, str | None]:
    return (
        FetchLimits(
            connect_timeout=fetching.connect_timeout.total_seconds(),
            total_timeout=fetching.timeout.total_seconds(),
            max_body=fetching.max_body,
            max_redirects=fetching.max_redirects,
            concurrency=fetching.concurrency,
            per_host=fetching.per_host,
        ),
        fetching.user_agent,
    )


def _fetcher(fetching: FetchSettings) -> Fetcher:
    limits, user_agent = _limits(fetching)
    return Fetcher(limits, **({"user_agent": user_agent} if user_agent else {}))
