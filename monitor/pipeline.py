"""The one place that knows the order: articles -> dedup -> match -> store -> outbox.

A source hands over the articles of one unit of work (a file, later a fetched feed). They are
deduplicated, matched and stored in ONE transaction together with the matches and their outbox
rows, so a crash either keeps all of it or none of it, and no committed match lacks its deliveries.

Identity: an article is known by (source, key). Seen again with the same text, it is skipped; with
changed text, a new version is stored and matched, but a rule that matched any earlier version
does not match again (earlier versions stay, with their matches: the evidence of what was
alerted). An article whose text, canonical URL or GUID is already stored under another key (a copy
of a file, the same story under a tracking URL) is a duplicate: neither stored nor alerted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.matching.engine import Matcher
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import FileRow, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledRules:
    """A rule set and its compiled matcher, swapped as one value."""

    ruleset: RuleSet
    matcher: Matcher
    by_id: dict[str, Rule]

    @classmethod
    def build(cls, ruleset: RuleSet) -> CompiledRules:
        return cls(ruleset, Matcher(ruleset.rules), ruleset.by_id())


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
        default_channels: Sequence[str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.rules = rules
        self.default_channels = tuple(default_channels)
        self.clock = clock

    def ingest(
        self, source_id: str, articles: Sequence[Article], file_state: FileRow | None = None
    ) -> IngestResult:
        """Store what is new in ``articles`` with its matches and outbox rows, in one transaction.

        ``file_state``, when given, is saved in the same transaction, so a file is marked as read
        exactly when its articles are committed.
        """
        result = IngestResult()
        rules = self.rules  # one rule set for the whole unit, even if a reload swaps it meanwhile
        now = self.clock()
        with self.db.session() as session:
            for article in articles:
                existing = repo.find_article(session, source_id, article.key)
                if existing is not None and existing.content_hash == article.content_hash:
                    result.unchanged += 1
                    continue
                if repo.find_same_content(session, article) is not None:
                    result.duplicates += 1
                    continue
                row = repo.save_article(session, article, now, previous=existing)
                assert row.id is not None
                already: set[str] = set()
                if existing is None:
                    result.new += 1
                else:
                    result.updated += 1
                    already = repo.matched_rule_ids(session, source_id, article.key)
                for match in rules.matcher.match(article):
                    if match.rule_id in already:
                        continue
                    rule = rules.by_id[match.rule_id]
                    channels = rule.notify if rule.notify is not None else self.default_channels
                    stored = repo.add_match(
                        session,
                        article_id=row.id,
                        rule=rule,
                        match=match,
                        channels=channels,
                        now=now,
                    )
                    assert stored.id is not None
                    result.match_ids.append(stored.id)
                    log.info(
                        "match: %s [%s] %s",
                        rule.id,
                        match.severity,
                        article.title,
                        extra={"rule_id": rule.id, "article_id": row.id, "source_id": source_id},
                    )
            if file_state is not None:
                repo.save_file_state(session, file_state)
        return result
