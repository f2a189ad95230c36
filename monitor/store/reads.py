"""Read queries of the HTTP API and the dashboard: stored matches found by filters, a keyset
page at a time, and one article with every match it has.

Each function takes an open Session (``Database.reading()``); none writes.

Matches are listed newest first, by (created_at, id), as ``monitor matches`` lists them. A page
after the first starts below a :class:`Position` (the last row of the page before), so a page is
one index range however deep it is, and matches stored meanwhile do not shift it.

Text search is a case-insensitive substring of the article's title, summary or body (the
snippet is cut from these), the same on both backends: PostgreSQL's ``lower()`` folds all of
Unicode, SQLite's only ASCII, so on SQLite the store registers ``monitor_lower`` (``str.lower``)
and the search calls that instead. ``%`` and ``_`` in the text are literal characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from monitor.store.db import LOWER
from monitor.store.tables import ArticleRow, MatchRow

__all__ = [
    "MAX_ID",
    "ArticleMatches",
    "MatchFilter",
    "Position",
    "article_matches",
    "count_matches",
    "find_matches",
    "position",
]


MAX_ID = 2**31 - 1
"""The highest id a row can have (ids are 32-bit integers on PostgreSQL): a larger id asked
for is absent, not a database error."""


class Position(NamedTuple):
    """Where a match stands in the newest-first order: its (created_at, id)."""

    created_at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class MatchFilter:
    """Which matches to list; an empty tuple or None does not filter. Times bound the match's
    ``created_at``: ``since`` inclusive, ``until`` exclusive."""

    rules: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


def find_matches(
    session: Session, filters: MatchFilter, limit: int, *, below: Position | None = None
) -> list[tuple[MatchRow, ArticleRow]]:
    """Up to ``limit`` matches with their articles, newest first, that pass ``filters``; with
    ``below``, only those after that position in this order (the next page)."""
    statement = select(MatchRow, ArticleRow).join(
        ArticleRow, col(MatchRow.article_id) == col(ArticleRow.id)
    )
    statement = statement.where(*_conditions(session, filters))
    if below is not None:
        created = col(MatchRow.created_at)
        statement = statement.where(
            or_(
                created < below.created_at,
                and_(created == below.created_at, col(MatchRow.id) < below.id),
            )
        )
    statement = statement.order_by(col(MatchRow.created_at).desc(), col(MatchRow.id).desc())
    return [tuple(row) for row in session.exec(statement.limit(limit)).all()]  # type: ignore[misc]


def count_matches(session: Session, filters: MatchFilter) -> int:
    """How many matches pass ``filters``, over every page."""
    statement: SelectOfScalar[int] = (
        select(func.count())
        .select_from(MatchRow)
        .join(ArticleRow, col(MatchRow.article_id) == col(ArticleRow.id))
        .where(*_conditions(session, filters))
    )
    return session.exec(statement).one()


def position(session: Session, match_id: int) -> Position | None:
    """Where the match ``match_id`` stands in the order of :func:`find_matches`; None when
    there is no such match."""
    if not 0 < match_id <= MAX_ID:
        return None
    created = session.exec(select(MatchRow.created_at).where(MatchRow.id == match_id)).first()
    return Position(created, match_id) if created is not None else None


@dataclass(frozen=True, slots=True)
class ArticleMatches:
    """A stored article (one version of it) and its matches, oldest first."""

    article: ArticleRow
    matches: list[MatchRow]


def article_matches(session: Session, article_id: int) -> ArticleMatches | None:
    """The article ``article_id`` with its matches; None when there is no such article."""
    article = session.get(ArticleRow, article_id)
    if article is None:
        return None
    statement = select(MatchRow).where(MatchRow.article_id == article_id).order_by(col(MatchRow.id))
    return ArticleMatches(article, list(session.exec(statement).all()))


def _conditions(session: Session, filters: MatchFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.rules:
        conditions.append(col(MatchRow.rule_id).in_(filters.rules))
    if filters.severities:
        conditions.append(col(MatchRow.severity).in_(filters.severities))
    if filters.sources:
        conditions.append(col(ArticleRow.source_id).in_(filters.sources))
    if filters.since is not None:
        conditions.append(col(MatchRow.created_at) >= filters.since)
    if filters.until is not None:
        conditions.append(col(MatchRow.created_at) < filters.until)
    if filters.text:
        conditions.append(_contains(session, filters.text))
    return conditions


def _contains(session: Session, text: str) -> ColumnElement[bool]:
    lower: Any = (
        func.lower if session.get_bind().dialect.name == "postgresql" else getattr(func, LOWER)
    )
    wanted = text.lower()
    fields: Sequence[Any] = (ArticleRow.title, ArticleRow.summary, ArticleRow.body)
    return or_(*(lower(col(field)).contains(wanted, autoescape=True) for field in fields))
