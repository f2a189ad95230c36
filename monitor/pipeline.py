"""The one place that knows the order: articles -> dedup -> match -> store -> outbox.

A source hands over the articles of one unit of work (a file, later a fetched feed). They are
deduplicated, matched and stored in ONE transaction together with the matches and their outbox
rows, so a crash either keeps all of it or none of it, and no committed match lacks its deliveries.

Identity: an article is known by (source, key). Seen again with the same text, it is skipped; with
changed text, a new version is stored and matched, but a rule that matched any earlier version
does not match again (earlier versions stay, with their matches: the evidence of what was
alerted). An article whose text, canonical URL or GUID is already stored under another key (a copy
of a file, the same story under a tracking URL) is a duplicate: neither stored nor alerted; a copy
from another source is listed in the original's alerts as another outlet.

Where and when each match alerts (routes, throttle windows, digests, quiet hours; a rewrite of a
recent story folded into it; corroboration by several sources) is decided here too, as its outbox
rows are written, by the policy of :mod:`monitor.notify.policy`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlmodel import Session, SQLModel

from monitor.identity import fingerprint
from monitor.matching.engine import Matcher
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.metrics import Metrics
from monitor.models import Article, RuleMatch
from monitor.notify.policy import Policy
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import utcnow

log = logging.getLogger(__name__)


def article_fingerprint(article: Article) -> int | None:
    """The fingerprint of an article's text (title, summary and body), to recognise rewrites."""
    return fingerprint("\n".join((article.title, article.summary, article.body)))


@dataclass(frozen=True)
class CompiledRules:
    """A rule set and its compiled matcher, swapped as one value."""

    ruleset: RuleSet
    matcher: Matcher
    by_id: dict[str, Rule]

    @classmethod
    def build(cls, ruleset: RuleSet) -> CompiledRules:
        return cls(ruleset, Matcher(ruleset.rules), ruleset.by_id())


class _Stories:
    """Each rule's recent stories (matches that stand for a story, with their fingerprints),
    kept in memory and brought up to date from the database at each lookup by reading only the
    stories stored since the last one: a busy rule has thousands of stories in a window, and
    reading them all for each feed made storing slower the more was stored.

    The shared cache holds committed stories only, so that a transaction that rolls back leaves
    nothing behind and no other thread (a folder's ingest) folds a rewrite into a story not
    committed. A transaction of several units (:meth:`Pipeline.ingest_many`) reads the stories
    of its own earlier units through an :class:`_Overlay` of its own, dropped at its end.
    Another process's story committed after a later one of its own (PostgreSQL sequences are not
    commit-ordered) can be missed: its rewrites then alert once more, nothing is lost.
    Blocking; thread-safe.
    """

    def __init__(self) -> None:
        self._known: dict[str, list[tuple[int, int, datetime]]] = {}
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def recent(
        self,
        session: Session,
        rule_ids: set[str],
        since: datetime,
        overlay: _Overlay | None = None,
    ) -> dict[str, list[tuple[int, int]]]:
        """(match id, fingerprint) of each rule's stories made at ``since`` or later, as
        ``session`` sees them. With ``overlay`` (a transaction of several units), a rule read
        once in the transaction is read again into the overlay only: the stories its earlier
        units stored are not committed yet."""
        with self._lock:
            shared = rule_ids if overlay is None else rule_ids - overlay.known.keys()
            # Rules this transaction has stored no story for yet: what it reads of them is
            # committed, and goes to the shared cache.
            found = _read(session, self._known, self._last, shared, since)
            if overlay is not None:
                self._seed(overlay, shared)
                found.update(_read(session, overlay.known, overlay.last, rule_ids - shared, since))
            return found

    def restart(self, overlay: _Overlay) -> None:
        """Start ``overlay``'s rules again from the shared cache (a savepoint rolled back: the
        stories it stored are gone; those of the transaction's earlier units are read again
        into the overlay, never into the shared cache)."""
        with self._lock:
            self._seed(overlay, list(overlay.known))

    def _seed(self, overlay: _Overlay, rule_ids: Iterable[str]) -> None:
        """Copy the shared cache's stories of ``rule_ids`` into ``overlay`` (under the lock)."""
        for rule_id in rule_ids:
            overlay.known[rule_id] = list(self._known.get(rule_id, ()))
            overlay.last[rule_id] = self._last.get(rule_id, 0)


@dataclass
class _Overlay:
    """One transaction's view of the stories of the rules it has read: the shared cache's, then
    what the transaction read since (its own stories among them)."""

    known: dict[str, list[tuple[int, int, datetime]]] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)


def _read(
    session: Session,
    known: dict[str, list[tuple[int, int, datetime]]],
    last: dict[str, int],
    rule_ids: set[str],
    since: datetime,
) -> dict[str, list[tuple[int, int]]]:
    """Bring ``known`` up to date for ``rule_ids`` with the stories stored after ``last``, drop
    those older than ``since``, and return (match id, fingerprint) of each rule's stories."""
    if not rule_ids:
        return {}
    after = {rule_id: last.get(rule_id, 0) for rule_id in rule_ids}
    for rule_id, rows in repo.story_candidates(session, after, since).items():
        known.setdefault(rule_id, []).extend(rows)
        last[rule_id] = rows[-1][0]
    found = {}
    for rule_id in rule_ids:
        kept = [row for row in known.get(rule_id, ()) if row[2] >= since]
        known[rule_id] = kept
        found[rule_id] = [(match_id, mark) for match_id, mark, _at in kept]
    return found


def _incoming(
    articles: Sequence[Article], identities: Sequence[tuple[str, str | None]] | None
) -> list[repo.Incoming]:
    """``articles`` with their identities: those given (content hash and canonical URL, in
    order), else computed here."""
    if identities is None:
        return list(map(repo.Incoming.of, articles))
    return [
        repo.Incoming(article, content_hash, url)
        for article, (content_hash, url) in zip(articles, identities, strict=True)
    ]


class Unit(NamedTuple):
    """What :meth:`Pipeline.ingest` takes, for :meth:`Pipeline.ingest_many`."""

    source_id: str
    articles: Sequence[Article]
    state: SQLModel | None = None
    hold: Callable[[Session], None] | None = None
    save: Callable[[Session, IngestResult], None] | None = None
    identities: Sequence[tuple[str, str | None]] | None = None


@dataclass
class IngestResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    match_ids: list[int] = field(default_factory=list)

    def __iadd__(self, other: IngestResult) -> IngestResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        self.match_ids += other.match_ids
        return self


class Pipeline:
    """Dedup, match and store articles; blocking (run it in a thread from async code)."""

    def __init__(
        self,
        db: Database,
        rules: CompiledRules,
        default_channels: Sequence[str] = (),
        clock: Callable[[], datetime] = utcnow,
        *,
        policy: Policy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``policy`` routes and times alerts; without one, every match goes at once to the
        rule's ``notify`` channels, else to ``default_channels``. ``metrics`` counts what is
        stored and times the matching."""
        self.db = db
        self.metrics = metrics if metrics is not None else Metrics()
        self.rules = rules
        self.policy = policy if policy is not None else Policy(default=tuple(default_channels))
        self.clock = clock
        self._stories = _Stories()

    def ingest(
        self,
        source_id: str,
        articles: Sequence[Article],
        state: SQLModel | None = None,
        *,
        hold: Callable[[Session], None] | None = None,
        save: Callable[[Session, IngestResult], None] | None = None,
        identities: Sequence[tuple[str, str | None]] | None = None,
    ) -> IngestResult:
        """Store what is new in ``articles`` with its matches and outbox rows, in one transaction.

        ``state``, when given (a file's row), is saved in the same transaction, so a source's
        progress (a file marked read, a feed's ETag) is recorded exactly when its articles are
        committed. ``save``, when given, runs last in the transaction with the result and saves the
        progress itself (a feed whose row exists: one UPDATE, where merging ``state`` reads the row
        first). ``hold``, when given, runs first in the transaction: it may lock the source's state
        and raise to store nothing (a feed whose claim another replica took over). Lookups are
        batched: a few queries per call, not a few per article. ``identities``, when given, are the
        articles' content hashes and canonical URLs, in order, computed already (by a parser
        process).
        """
        return self._ingest(Unit(source_id, articles, state, hold, save, identities))

    def _ingest(self, unit: Unit) -> IngestResult:
        with self.db.session() as session:
            result, found = self._store(session, unit)
        # Counted once committed: a unit that rolled back stored nothing.
        self._count(result, found)
        return result

    def ingest_many(self, units: Sequence[Unit]) -> list[IngestResult | Exception]:
        """Store several units as :meth:`ingest` would store each, in one transaction: one
        commit (and on SQLite one sync to disk) for all of them, where a commit each made the
        writer wait on the disk for every feed. Each unit runs in a savepoint of its own, so a
        unit that raises (its ``hold``, say) stores nothing and the others are stored; its
        exception is returned in its place. Should the transaction itself fail, each unit is
        stored again on its own, as :meth:`ingest` does, and what that raises is returned.
        Results come in the order of ``units``; ``save`` and ``state`` may run twice."""
        outcomes: list[IngestResult | Exception] = []
        stored: list[tuple[IngestResult, list[tuple[int, Article, RuleMatch]]]] = []
        overlay = _Overlay()
        try:
            with self.db.session() as session:
                for unit in units:
                    try:
                        with session.begin_nested():
                            result, found = self._store(session, unit, overlay)
                    except Exception as exc:  # noqa: BLE001 (this unit's failure, returned)
                        # Its savepoint rolled back, with any story it stored.
                        self._stories.restart(overlay)
                        outcomes.append(exc)
                    else:
                        outcomes.append(result)
                        stored.append((result, found))
        except Exception:  # noqa: BLE001 (the transaction failed: each unit again, alone)
            log.info("%d units not stored together; storing each alone", len(units))
            return [self._alone(unit) for unit in units]
        for result, found in stored:
            self._count(result, found)
        return outcomes

    def _alone(self, unit: Unit) -> IngestResult | Exception:
        try:
            return self._ingest(unit)
        except Exception as exc:  # noqa: BLE001 (returned to the unit's caller)
            return exc

    def _count(self, result: IngestResult, found: list[tuple[int, Article, RuleMatch]]) -> None:
        self.metrics.ingested(result.new, result.updated)
        for _article_id, _article, match in found:
            self.metrics.matched(match.rule_id, match.severity)

    def _store(
        self, session: Session, unit: Unit, overlay: _Overlay | None = None
    ) -> tuple[IngestResult, list[tuple[int, Article, RuleMatch]]]:
        """One unit's dedup, matching and storage in ``session``'s transaction: its result and
        the matches stored, (article id, article, match)."""
        source_id, articles, state, hold, save, identities = unit
        result = IngestResult()
        rules = self.rules  # one rule set for the whole unit, even if a reload swaps it meanwhile
        now = self.clock()
        # An article listed twice in one unit (a feed repeating a GUID) is taken once: the first.
        incoming = _incoming(articles, identities)
        items = list({item.article.key: item for item in reversed(incoming)}.values())[::-1]
        unique = [item.article for item in items]
        if hold is not None:
            hold(session)
        existing = repo.current_versions(session, source_id, [a.key for a in unique])
        changed = []
        for item in items:
            known = existing.get(item.article.key)
            if known is not None and known[1] == item.content_hash:
                result.unchanged += 1
            else:
                changed.append(item)
        duplicates = repo.find_same_content(session, changed)
        copied = {
            index: holder
            for index, holder in duplicates.items()
            if holder[0] != changed[index].article.source_id
        }
        if copied and self.policy.story_window is not None:
            # The same article from another outlet: listed in the alerts of the original's
            # matches, as a rewrite would be.
            stories = repo.story_matches(session, set(copied.values()))
            outlets = [
                (match_id, changed[index].article)
                for index, holder in copied.items()
                for match_id in stories.get(holder, ())
            ]
            repo.insert_outlets(session, outlets, now)
        fresh: list[repo.Incoming] = []
        seen_in_unit: set[str] = set()
        for index, item in enumerate(changed):
            marks = {item.content_hash, *([item.url] if item.url else [])}
            if item.article.guid:
                marks.add(f"guid:{item.article.guid}")
            if index in duplicates or marks & seen_in_unit:
                result.duplicates += 1
                continue
            seen_in_unit |= marks
            fresh.append(item)
        updated = [item.article.key for item in fresh if item.article.key in existing]
        result.updated = len(updated)
        result.new = len(fresh) - len(updated)
        already = repo.matched_rule_ids(session, source_id, updated)
        ids = repo.insert_articles(
            session, fresh, now, replacing=[existing[key][0] for key in updated]
        )
        found: list[tuple[int, Article, RuleMatch]] = []
        for article_id, (article, _hash, _url) in zip(ids, fresh, strict=True):
            with self.metrics.match_latency.time():
                matches = rules.matcher.match(article)
            # A rule that alerted for an earlier version of the article does not again.
            done = already.get(article.key, ())
            found += [(article_id, article, m) for m in matches if m.rule_id not in done]
        result.match_ids = self._store_matches(session, rules, found, now, overlay)
        if state is not None:
            session.merge(state)
        if save is not None:
            save(session, result)
        return result, found

    def _planned(
        self,
        rule: Rule,
        source_id: str,
        now: datetime,
        windows: dict[tuple[str, str], datetime],
    ) -> list[repo.Planned]:
        """The deliveries of a match of ``rule`` on an article of ``source_id``: its channels,
        each with its due time and batch. ``windows`` holds when each (rule, channel) throttle
        window opened; an alert sent on its own opens one (recorded there)."""
        planned: list[repo.Planned] = []
        for channel in self.policy.channels_for(rule, source_id):
            plan = self.policy.plan(rule, channel, now, windows.get((rule.id, channel)))
            if plan.batch is None and rule.throttle is not None:
                windows[rule.id, channel] = now
            planned.append((channel, plan.due, plan.batch))
        return planned

    def _corroborate(
        self,
        session: Session,
        found: list[tuple[int, Article, RuleMatch, Rule]],
        now: datetime,
        outlets: list[tuple[int, Article]],
    ) -> list[int]:
        """Store matches of rules with ``min_sources``, one at a time, in order: a match waits
        (no deliveries) until its rule's matches within the window come from that many distinct
        sources; the one that completes them alerts, listing the waiting ones as its outlets
        (added to ``outlets``), and the matches after it in the window are folded into it."""
        ids: list[int] = []
        states: dict[str, repo.Corroboration] = {}
        for article_id, article, match, rule in found:
            assert rule.min_sources is not None
            state = states.get(rule.id)
            if state is None:
                state = states[rule.id] = repo.corroboration(session, rule.id, now - rule.window)
            if state.alert is not None:
                new = repo.NewMatch(article_id, rule, match, story_of=state.alert)
                ids += repo.insert_matches(session, [new], now)
                outlets.append((state.alert, article))
                continue
            sources = {source for _m, _a, source in state.waiting} | {article.source_id}
            if len(sources) < rule.min_sources:
                new = repo.NewMatch(article_id, rule, match, waiting=True)
                [waiting] = repo.insert_matches(session, [new], now)
                state.waiting.append((waiting, article_id, article.source_id))
                ids.append(waiting)
                continue
            planned = self._planned(rule, article.source_id, now, {})
            [story] = repo.insert_matches(
                session, [repo.NewMatch(article_id, rule, match, planned)], now
            )
            earlier = repo.join_story(session, [m for m, _a, _s in state.waiting], story)
            outlets += [(story, other) for other in earlier]
            log.info(
                "corroborated: %s matched in %d sources within %s",
                rule.id,
                len(sources),
                rule.window,
                extra={"rule_id": rule.id, "source_id": article.source_id},
            )
            state.alert, state.waiting = story, []
            ids.append(story)
        return ids

    def _store_matches(
        self,
        session: Session,
        rules: CompiledRules,
        found: list[tuple[int, Article, RuleMatch]],
        now: datetime,
        overlay: _Overlay | None = None,
    ) -> list[int]:
        """Store the matches with their outbox rows, routed and timed by the policy, rewrites
        of a recent story folded into its alert; return their ids."""
        policy = self.policy
        stories: dict[str, list[tuple[int, int]]] = {}
        if policy.story_window is not None and found:
            rule_ids = {match.rule_id for _a, _article, match in found}
            since = now - policy.story_window
            stories = self._stories.recent(session, rule_ids, since, overlay)

        fingerprints: dict[str, int | None] = {}

        def fingerprint_of(article: Article) -> int | None:
            if policy.story_window is None:
                return None
            if article.key not in fingerprints:  # an article matching several rules: once
                fingerprints[article.key] = article_fingerprint(article)
            return fingerprints[article.key]

        # Each match stands for its story, or is folded into a stored story's match, or into
        # one stored by this unit (known by its place among the stories until it has an id).
        leading: list[tuple[int, Article, RuleMatch, Rule, int | None]] = []
        folded: list[tuple[int | None, int, int, Article, RuleMatch, Rule, int | None]] = []
        unit_stories: dict[str, list[tuple[int, int]]] = {}
        corroborated: list[tuple[int, Article, RuleMatch, Rule]] = []
        for article_id, article, match in found:
            rule = rules.by_id[match.rule_id]
            if rule.min_sources is not None:
                corroborated.append((article_id, article, match, rule))
                continue
            mark = fingerprint_of(article)
            into = policy.same_story(mark, stories.get(rule.id, ()))
            place = policy.same_story(mark, unit_stories.get(rule.id, ()))
            if into is not None or place is not None:
                folded.append((into, place or 0, article_id, article, match, rule, mark))
                continue
            if mark is not None:
                unit_stories.setdefault(rule.id, []).append((len(leading), mark))
            leading.append((article_id, article, match, rule, mark))
        # Throttle windows already open (one query); _planned adds those this unit opens.
        throttled = {
            (rule.id, channel)
            for _a, article, _m, rule, _f in leading
            if rule.throttle
            for channel in policy.channels_for(rule, article.source_id)
        }
        longest = max((e[3].throttle for e in leading if e[3].throttle), default=None)
        windows = (
            repo.throttle_windows(session, throttled, now - longest) if longest is not None else {}
        )
        rows = [
            repo.NewMatch(
                article_id, rule, match, self._planned(rule, article.source_id, now, windows), mark
            )
            for article_id, article, match, rule, mark in leading
        ]
        ids = repo.insert_matches(session, rows, now)
        outlets: list[tuple[int, Article]] = []
        copies = []
        for into, place, article_id, article, match, rule, mark in folded:
            story = into if into is not None else ids[place]
            outlets.append((story, article))
            copies.append(repo.NewMatch(article_id, rule, match, (), mark, story))
        ids += repo.insert_matches(session, copies, now)
        ids += self._corroborate(session, corroborated, now, outlets)
        repo.insert_outlets(session, outlets, now)
        for article_id, article, match in found:
            log.info(
                "match: %s [%s] %s",
                match.rule_id,
                match.severity,
                article.title,
                extra={
                    "rule_id": match.rule_id,
                    "article_id": article_id,
                    "source_id": article.source_id,
                },
            )
        return ids
