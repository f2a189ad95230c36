"""The queries monitor runs. Each takes an open Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    inspect,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, col, select

from monitor.identity import canonical_url
from monitor.matching.rules import Rule
from monitor.models import Article, Outlet, RuleMatch
from monitor.store import reads
from monitor.store.tables import (
    ArticleRow,
    DeliveryRow,
    FeedRow,
    FileRow,
    MatchRow,
    OutletRow,
    SourceRow,
    SubscriptionRow,
)

PENDING, SENT, DEAD = "pending", "sent", "dead"


def core_table(model: type[SQLModel]) -> Table:
    """A model's table, for Core statements on hot paths (no ORM bookkeeping per row)."""
    table: Table = getattr(model, "__table__")  # noqa: B009 (SQLModel's stubs do not declare it)
    return table


_CHUNK = 500
"""Values per IN (...) list: well under every backend's limit on bound parameters."""


_T = TypeVar("_T")


def chunks(values: Sequence[_T]) -> list[Sequence[_T]]:
    """``values`` cut into lists short enough for one IN (...) each."""
    return [values[start : start + _CHUNK] for start in range(0, len(values), _CHUNK)]


class Incoming(NamedTuple):
    """An article on its way in, with its identity computed once (hashing the text and parsing
    the URL are not free, and dedup and storage both need them)."""

    article: Article
    content_hash: str
    url: str | None
    """The canonical URL."""

    @classmethod
    def of(cls, article: Article) -> Incoming:
        return cls(article, article.content_hash, canonical_url(article.url))


def find_articles(session: Session, source_id: str, keys: Sequence[str]) -> dict[str, ArticleRow]:
    """The current version of each of ``keys`` that is stored, by key (batched lookups)."""
    found: dict[str, ArticleRow] = {}
    for chunk in chunks(list(dict.fromkeys(keys))):
        statement = select(ArticleRow).where(
            ArticleRow.source_id == source_id,
            col(ArticleRow.key).in_(chunk),
            col(ArticleRow.current),
        )
        found.update((row.key, row) for row in session.exec(statement).all())
    return found


def find_same_content(session: Session, items: Sequence[Incoming]) -> dict[int, tuple[str, str]]:
    """The items that are another stored article under another key (the same text, the same
    canonical URL, or within one source the same GUID): index -> that article's (source id,
    key), the oldest-keyed first. A few batched queries, not one per article."""
    if not items:
        return {}
    guids: dict[str, list[str]] = {}
    for article, _hash, _url in items:
        if article.guid:
            guids.setdefault(article.source_id, []).append(article.guid[:1024])
    rows: list[tuple[str, str, str, str | None, str | None]] = []
    hashes = [item.content_hash for item in items]
    queries: list[tuple[Select[str, str, str, str | None, str | None], dict[str, object]]] = [
        (_SAME_HASH, {"values": chunk}) for chunk in chunks(hashes)
    ]
    present = [item.url for item in items if item.url]
    queries += [(_SAME_URL, {"values": chunk}) for chunk in chunks(present)]
    queries += [
        (_SAME_GUID, {"source_id": source_id, "values": chunk})
        for source_id, values in guids.items()
        for chunk in chunks(values)
    ]
    connection = session.connection()
    for statement, parameters in queries:
        rows += [(r[0], r[1], r[2], r[3], r[4]) for r in connection.execute(statement, parameters)]
    by_hash: dict[str, set[tuple[str, str]]] = {}
    by_url: dict[str, set[tuple[str, str]]] = {}
    by_guid: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for source_id, key, content_hash, url, guid in rows:
        by_hash.setdefault(content_hash, set()).add((source_id, key))
        if url:
            by_url.setdefault(url, set()).add((source_id, key))
        if guid:
            by_guid.setdefault((source_id, guid), set()).add((source_id, key))
    duplicates = {}
    for index, (article, content_hash, url) in enumerate(items):
        own = {(article.source_id, article.key)}
        holders = by_hash.get(content_hash, set())
        if url:
            holders = holders | by_url.get(url, set())
        if article.guid:
            holders = holders | by_guid.get((article.source_id, article.guid[:1024]), set())
        if others := holders - own:
            duplicates[index] = min(others)
    return duplicates


def _same_content(
    condition: ColumnElement[bool],
) -> Select[str, str, str, str | None, str | None]:
    """A query of :func:`find_same_content`, built once (it runs for every unit stored)."""
    table = core_table(ArticleRow)
    return core_select(
        table.c.source_id, table.c.key, table.c.content_hash, table.c.canonical_url, table.c.guid
    ).where(condition)


_SAME_HASH = _same_content(col(ArticleRow.content_hash).in_(bindparam("values", expanding=True)))
_SAME_URL = _same_content(col(ArticleRow.canonical_url).in_(bindparam("values", expanding=True)))
_SAME_GUID = _same_content(
    and_(
        col(ArticleRow.source_id) == bindparam("source_id"),
        col(ArticleRow.guid).in_(bindparam("values", expanding=True)),
    )
)


def story_matches(
    session: Session, articles: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[int]]:
    """The matches that stand for a story (not folded into another) of the current version of
    each (source id, key) of ``articles``."""
    found: dict[tuple[str, str], list[int]] = {}
    by_source: dict[str, list[str]] = {}
    for source_id, key in articles:
        by_source.setdefault(source_id, []).append(key)
    for source_id, keys in by_source.items():
        for chunk in chunks(sorted(set(keys))):
            statement = (
                core_select(col(ArticleRow.key), col(MatchRow.id))
                .join(MatchRow, col(MatchRow.article_id) == col(ArticleRow.id))
                .where(
                    col(ArticleRow.source_id) == source_id,
                    col(ArticleRow.key).in_(chunk),
                    col(ArticleRow.current),
                    col(MatchRow.story_of).is_(None),
                )
                .order_by(col(MatchRow.id))
            )
            for key, match_id in session.connection().execute(statement):
                if match_id is not None:
                    found.setdefault((source_id, key), []).append(match_id)
    return found


def current_versions(
    session: Session, source_id: str, keys: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """(id, content_hash) of the current version of each of ``keys`` that is stored."""
    found: dict[str, tuple[int, str]] = {}
    connection = session.connection()
    for chunk in chunks(list(dict.fromkeys(keys))):
        rows = connection.execute(_CURRENT, {"source_id": source_id, "keys": chunk})
        for key, article_id, content_hash in rows:
            assert article_id is not None
            found[key] = (article_id, content_hash)
    return found


_CURRENT = core_select(col(ArticleRow.key), col(ArticleRow.id), col(ArticleRow.content_hash)).where(
    col(ArticleRow.source_id) == bindparam("source_id"),
    col(ArticleRow.key).in_(bindparam("keys", expanding=True)),
    col(ArticleRow.current),
)
"""The query of :func:`current_versions`, built once (it runs for every unit stored)."""


def insert_articles(
    session: Session, items: Sequence[Incoming], now: datetime, *, replacing: Sequence[int] = ()
) -> list[int]:
    """Store the articles of ``items`` as the current versions of their keys, in one statement;
    the rows ``replacing`` (their earlier versions) stop being current first. Their ids, in
    order."""
    if replacing:
        # The unique index allows one current version of a key at a time: retire, then insert.
        for chunk in chunks(replacing):
            session.execute(
                update(ArticleRow).where(col(ArticleRow.id).in_(chunk)).values(current=False)
            )
    if not items:
        return []
    values = [
        {
            "source_id": article.source_id,
            "key": article.key,
            "content_hash": content_hash,
            "url": article.url,
            "canonical_url": url,
            "guid": article.guid[:1024] if article.guid else None,
            "title": article.title,
            "summary": article.summary,
            "body": article.body,
            "author": article.author,
            "language": article.language,
            "location": article.location,
            "tags": list(article.tags),
            "published": article.published,
            "current": True,
            "created_at": now,
            "updated_at": now,
        }
        for article, content_hash, url in items
    ]
    table = core_table(ArticleRow)  # Core, not the ORM's bulk insert: a third of the cost
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in session.connection().execute(statement, values)]


def matched_rule_ids(session: Session, source_id: str, keys: Sequence[str]) -> dict[str, set[str]]:
    """For each key, the rules that matched any version of that article: they do not alert for
    it again."""
    found: dict[str, set[str]] = {}
    for chunk in chunks(list(dict.fromkeys(keys))):
        statement = (
            select(ArticleRow.key, MatchRow.rule_id)
            .join(ArticleRow, col(MatchRow.article_id) == col(ArticleRow.id))
            .where(ArticleRow.source_id == source_id, col(ArticleRow.key).in_(chunk))
        )
        for key, rule_id in session.exec(statement).all():
            found.setdefault(key, set()).add(rule_id)
    return found


Planned = tuple[str, datetime, str | None]
"""One delivery of a match: (channel, due at, batch or None)."""


class NewMatch(NamedTuple):
    """A match to store: its article, rule and hits, its planned deliveries, the fingerprint of
    the article's text, and the match it is folded into (then it has no deliveries)."""

    article_id: int
    rule: Rule
    match: RuleMatch
    deliveries: Sequence[Planned] = ()
    fingerprint: int | None = None
    story_of: int | None = None
    waiting: bool = False


def insert_matches(session: Session, matches: Sequence[NewMatch], now: datetime) -> list[int]:
    """Store ``matches`` and one outbox row per planned delivery of each, in two statements of
    the caller's transaction. The matches' ids, in order."""
    if not matches:
        return []
    table = core_table(MatchRow)
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    values = [
        {
            "article_id": new.article_id,
            "rule_id": new.rule.id,
            "rule_name": new.rule.name,
            "severity": str(new.match.severity),
            "hits": [hit.as_dict() for hit in new.match.hits],
            "created_at": now,
            "fingerprint": new.fingerprint,
            "story_of": new.story_of,
            "waiting": new.waiting,
        }
        for new in matches
    ]
    ids = [row[0] for row in session.connection().execute(statement, values)]
    deliveries = [
        {
            "match_id": match_id,
            "channel": channel,
            "next_attempt_at": due,
            "batch": batch,
            "created_at": now,
        }
        for match_id, new in zip(ids, matches, strict=True)
        for channel, due, batch in {p[0]: p for p in new.deliveries}.values()
    ]
    if deliveries:
        session.connection().execute(insert(core_table(DeliveryRow)), deliveries)
    return ids


def story_candidates(
    session: Session, after: Mapping[str, int], since: datetime
) -> dict[str, list[tuple[int, int, datetime]]]:
    """For each rule id of ``after``, its matches made at ``since`` or later, with an id above
    the one given for it, that stand for a story (not folded into another) and have a
    fingerprint: (match id, fingerprint, created at), oldest first."""
    found: dict[str, list[tuple[int, int, datetime]]] = {}
    connection = session.connection()
    for rule_id, last in sorted(after.items()):
        for match_id, fingerprint, created in connection.execute(
            _STORIES, {"rule_id": rule_id, "last": last, "since": since}
        ):
            if match_id is not None and fingerprint is not None and created is not None:
                found.setdefault(rule_id, []).append((match_id, fingerprint, created))
    return found


def stories_statement() -> Select[int | None, int | None, datetime | None]:
    """The query of :func:`story_candidates` for one rule, with the parameters ``rule_id``,
    ``last`` (the id above which its stories are wanted) and ``since`` (a test checks the index
    SQLite uses for it). One statement per rule, built once, where one statement for all of a
    unit's rules had to be built and keyed anew for each unit, which cost more than running it."""
    return (
        core_select(
            col(MatchRow.id),
            col(MatchRow.fingerprint),
            col(MatchRow.created_at),
        )
        .where(
            col(MatchRow.rule_id) == bindparam("rule_id"),
            col(MatchRow.id) > bindparam("last"),
            col(MatchRow.created_at) >= bindparam("since"),
            col(MatchRow.story_of).is_(None),
            col(MatchRow.fingerprint).is_not(None),
        )
        .order_by(col(MatchRow.id))
    )


_STORIES = stories_statement()


@dataclass
class Corroboration:
    """A rule's matches inside its ``min_sources`` window: the match that alerted for them, if
    one did, and the matches still waiting for more sources (match id, article id, source id)."""

    alert: int | None = None
    waiting: list[tuple[int, int, str]] = field(default_factory=list)


def corroboration(session: Session, rule_id: str, since: datetime) -> Corroboration:
    """Where ``rule_id``'s corroboration stands for matches made at ``since`` or later."""
    statement = (
        core_select(
            col(MatchRow.id),
            col(MatchRow.article_id),
            col(ArticleRow.source_id),
            col(MatchRow.waiting),
        )
        .join(ArticleRow, col(ArticleRow.id) == col(MatchRow.article_id))
        .where(
            col(MatchRow.rule_id) == rule_id,
            col(MatchRow.created_at) >= since,
            col(MatchRow.story_of).is_(None),
        )
        .order_by(col(MatchRow.id))
    )
    found = Corroboration()
    for match_id, article_id, source_id, waiting in session.connection().execute(statement):
        if match_id is None:
            continue
        if waiting:
            found.waiting.append((match_id, article_id, source_id))
        else:
            found.alert = match_id
    return found


def join_story(session: Session, match_ids: Sequence[int], story: int) -> list[Article]:
    """Fold the waiting ``match_ids`` into the match ``story`` (which alerts for them); return
    their articles, oldest first."""
    if not match_ids:
        return []
    session.connection().execute(
        update(core_table(MatchRow))
        .where(core_table(MatchRow).c.id.in_(list(match_ids)))
        .values(waiting=False, story_of=story)
    )
    statement = (
        select(ArticleRow)
        .join(MatchRow, col(MatchRow.article_id) == col(ArticleRow.id))
        .where(col(MatchRow.id).in_(list(match_ids)))
        .order_by(col(MatchRow.id))
    )
    return [article_from_row(row) for row in session.exec(statement).all()]


def insert_outlets(session: Session, outlets: Sequence[tuple[int, Article]], now: datetime) -> None:
    """Record each (match id, article) as another outlet of the match's story; an outlet
    already recorded for a match is left as it is."""
    table = core_table(OutletRow)
    known = set()
    if outlets:
        statement = core_select(table.c.match_id, table.c.source_id, table.c.key).where(
            table.c.match_id.in_(sorted({match_id for match_id, _a in outlets}))
        )
        known = {tuple(row) for row in session.connection().execute(statement)}
    rows = []
    for match_id, article in outlets:
        mark = (match_id, article.source_id, article.key[:1024])
        if mark in known:
            continue
        known.add(mark)
        rows.append(
            {
                "match_id": match_id,
                "source_id": article.source_id,
                "key": article.key[:1024],
                "title": article.title,
                "url": article.url,
                "published": article.published,
                "created_at": now,
            }
        )
    if rows:
        session.connection().execute(insert(table), rows)


def outlets_for(session: Session, match_ids: Collection[int]) -> dict[int, tuple[Outlet, ...]]:
    """The other outlets recorded for each of ``match_ids`` (none listed: none), oldest first."""
    found: dict[int, list[Outlet]] = {}
    ids = sorted(set(match_ids))
    for chunk in chunks(ids):
        statement = (
            select(OutletRow).where(col(OutletRow.match_id).in_(chunk)).order_by(col(OutletRow.id))
        )
        for row in session.exec(statement).all():
            found.setdefault(row.match_id, []).append(
                Outlet(row.source_id, row.title, row.url, row.published)
            )
    return {match_id: tuple(outlets) for match_id, outlets in found.items()}


def throttle_windows(
    session: Session, pairs: Collection[tuple[str, str]], since: datetime
) -> dict[tuple[str, str], datetime]:
    """For each (rule id, channel) of ``pairs``, when its last delivery sent on its own (not
    in a batch) was created, if that was at ``since`` or later: a throttle window opens then."""
    if not pairs:
        return {}
    rules = sorted({rule_id for rule_id, _channel in pairs})
    statement = (
        core_select(
            col(MatchRow.rule_id), col(DeliveryRow.channel), func.max(DeliveryRow.created_at)
        )
        .join(MatchRow, col(MatchRow.id) == col(DeliveryRow.match_id))
        .where(
            col(MatchRow.rule_id).in_(rules),
            col(DeliveryRow.batch).is_(None),
            col(DeliveryRow.created_at) >= since,
        )
        .group_by(col(MatchRow.rule_id), col(DeliveryRow.channel))
    )
    found: dict[tuple[str, str], datetime] = {}
    for rule_id, channel, opened in session.connection().execute(statement):
        if (rule_id, channel) in pairs and opened is not None:
            found[rule_id, channel] = opened
    return found


def file_state(session: Session, source_id: str, path: str) -> FileRow | None:
    return session.get(FileRow, (source_id, path))


def file_states(session: Session, source_id: str) -> dict[str, FileRow]:
    """What is known of every file of a folder source, by path."""
    rows = session.exec(select(FileRow).where(FileRow.source_id == source_id)).all()
    return {row.path: row for row in rows}


def save_file_state(session: Session, state: FileRow) -> None:
    session.merge(state)


def record_poll(
    session: Session, source_id: str, kind: str, now: datetime, error: str | None
) -> bool:
    """Record a source's poll; True when its health changed (healthy <-> failing)."""
    row = session.get(SourceRow, source_id) or SourceRow(id=source_id, type=kind)
    was_failing = row.consecutive_failures > 0
    row.type = kind
    row.last_polled_at = now
    if error is None:
        row.last_success_at = now
        row.consecutive_failures = 0
    else:
        row.consecutive_failures += 1
    row.last_error = error
    session.add(row)
    return was_failing != (error is not None)


def feed_states(session: Session) -> dict[str, FeedRow]:
    return {row.source_id: row for row in session.exec(select(FeedRow)).all()}


def save_feed_states(session: Session, rows: Sequence[FeedRow]) -> None:
    """Save the state of feeds that already have a row: one UPDATE executed for all of them,
    in Core (the ORM's bulk update costs several times more per row)."""
    if not rows:
        return
    statement, names = _feed_state_update()
    session.connection().execute(
        statement,
        [
            {"b_source_id": row.source_id, **{f"b_{name}": getattr(row, name) for name in names}}
            for row in rows
        ],
    )


_FEED_IDENTITY = frozenset(("source_id", "url"))
"""Columns of a feed's row that a saved state never changes (the sync owns them)."""


@cache
def _feed_state_update() -> tuple[Update, tuple[str, ...]]:
    """The statement of :func:`save_feed_states` and the columns it sets, built once: it runs
    for every feed polled."""
    table = core_table(FeedRow)
    names = tuple(column.name for column in table.columns if column.name not in _FEED_IDENTITY)
    statement = (
        update(table)
        .where(table.c.source_id == bindparam("b_source_id"))
        .values({name: bindparam(f"b_{name}") for name in names})
    )
    return statement, names


def subscriptions(session: Session, source_ids: Sequence[str]) -> dict[str, SubscriptionRow]:
    """The WebSub subscriptions of ``source_ids`` that exist, by source id."""
    found: dict[str, SubscriptionRow] = {}
    for chunk in chunks(list(source_ids)):
        statement = select(SubscriptionRow).where(col(SubscriptionRow.source_id).in_(chunk))
        found.update((row.source_id, row) for row in session.exec(statement).all())
    return found


def source_states(session: Session) -> dict[str, SourceRow]:
    return {row.id: row for row in session.exec(select(SourceRow)).all()}


def recent_matches(
    session: Session, limit: int = 20, rule_id: str | None = None
) -> list[tuple[MatchRow, ArticleRow]]:
    """The newest ``limit`` matches (of ``rule_id`` only, when given) with their articles; the
    API's filtered listing (:func:`monitor.store.reads.find_matches`) with one filter."""
    filters = reads.MatchFilter(rules=(rule_id,) if rule_id else ())
    return reads.find_matches(session, filters, limit)


def deliveries_for(session: Session, match_ids: Sequence[int]) -> dict[int, list[DeliveryRow]]:
    result: dict[int, list[DeliveryRow]] = {match_id: [] for match_id in match_ids}
    if match_ids:
        statement = select(DeliveryRow).where(col(DeliveryRow.match_id).in_(match_ids))
        for row in session.exec(statement).all():
            result[row.match_id].append(row)
    return result


def article_from_row(row: ArticleRow) -> Article:
    """The Article a stored row holds, as a source produced it (its content_hash is the row's)."""
    return Article(
        title=row.title,
        body=row.body,
        summary=row.summary,
        url=row.url,
        author=row.author,
        published=row.published,
        tags=tuple(row.tags),
        language=row.language,
        guid=row.guid,
        source_id=row.source_id,
        key=row.key,
        location=row.location,
    )


def schema_exists(session: Session) -> bool:
    """True when the articles and matches tables exist (a daemon has run on this database)."""
    inspector = inspect(session.connection())
    return all(inspector.has_table(table.__tablename__) for table in (ArticleRow, MatchRow))


def count_articles_since(session: Session, since: datetime) -> tuple[int, int | None]:
    """How many articles were first stored at or after ``since``, and the highest id among them.

    The id bounds a later scan (:func:`articles_since`) to the articles counted here, so a count
    shown before a long scan stays true while the daemon keeps storing articles.
    """
    statement = select(func.count(), func.max(ArticleRow.id)).where(
        col(ArticleRow.created_at) >= since, col(ArticleRow.current)
    )
    total, top = session.exec(statement).one()
    return total, top


def articles_since(
    session: Session, since: datetime, *, below: int, limit: int
) -> list[ArticleRow]:
    """One keyset page: articles first stored at or after ``since`` with id < ``below``, newest
    id first. An empty list means the scan is done."""
    statement = (
        select(ArticleRow)
        .where(
            col(ArticleRow.created_at) >= since, col(ArticleRow.id) < below, col(ArticleRow.current)
        )
        .order_by(col(ArticleRow.id).desc())
        .limit(limit)
    )
    return list(session.exec(statement).all())


def stored_rule_ids(session: Session, article_ids: Sequence[int]) -> dict[int, set[str]]:
    """The rule ids stored in matches for each of ``article_ids`` (an empty set: none), counting
    the matches of every version of each article."""
    result: dict[int, set[str]] = {article_id: set() for article_id in article_ids}
    if article_ids:
        current = aliased(ArticleRow)
        version = aliased(ArticleRow)
        statement = (
            select(current.id, MatchRow.rule_id)
            .join(
                version,
                and_(col(version.source_id) == current.source_id, col(version.key) == current.key),
            )
            .join(MatchRow, col(MatchRow.article_id) == version.id)
            .where(col(current.id).in_(article_ids))
        )
        for article_id, rule_id in session.exec(statement).all():
            assert article_id is not None
            result[article_id].add(rule_id)
    return result
