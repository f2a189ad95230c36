"""What the HTTP API, the Atom feed and the dashboard show: plain views of the daemon's stored
matches, articles, sources, rules and deliveries, built in one place so the JSON and the pages
say the same thing. The functions block (database reads): handlers run them in threads.

No secret leaves through a view. Channels are named by their id, never their URL; stored errors
(a delivery's, a source's) pass through :func:`monitor.logs.redact`, which masks every secret the
process registered (channel tokens, feed passwords and headers, the HTTP token); feed URLs are
shown as ``monitor sources`` shows them, with any password or ``?token=`` masked. Article text
is data: views keep it as it is (cleaned of control characters where shown on one line);
escaping is the output's job (JSON, XML, autoescaped HTML), and links are only ever http(s)
URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from monitor.errors import Problem
from monitor.logs import redact
from monitor.matching.rules import Rule
from monitor.models import Hit
from monitor.notify import operations
from monitor.notify.operations import DeliveryView
from monitor.notify.outbox import build_alert
from monitor.notify.render import Segment, excerpt, safe_link, title_line, visible
from monitor.settings import Settings
from monitor.sources.health import SourceHealth, source_health
from monitor.store import reads, repo
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, MatchRow, utcnow
from monitor.web.params import BadParameter, DeliveryQuery, MatchQuery

__all__ = [
    "ArticlePage",
    "MatchPage",
    "MatchView",
    "Reads",
    "RulesStatus",
    "article_page",
    "deliveries",
    "marked",
    "matches_page",
    "sources",
]


@dataclass(frozen=True, slots=True)
class RulesStatus:
    """The rules in use, and the problems of the last attempt to load the rule files.

    This is the interface between whatever loads rules and the web app: the daemon gives the web
    app a callable returning one of these (:attr:`Reads.rules`), called at every request. At
    start-up the rule files either load or stop the daemon, so ``errors`` starts empty. A hot
    reload that fails keeps the last good rules in use and reports its problems here, so the
    API shows both what runs and why the files on disk do not; a reload that succeeds swaps
    ``rules`` and clears ``errors``. ``loaded_at``: when ``rules`` were loaded, if known.
    """

    rules: tuple[Rule, ...]
    errors: tuple[Problem, ...] = ()
    loaded_at: datetime | None = None


@dataclass(frozen=True)
class Reads:
    """Where the web app reads from: the database, and the daemon's current settings and
    rules (callables, called at each request, so a reload is seen at once); ``clock`` is the one
    the daemon writes its times with (the database's), for "since" filters and ages."""

    db: Database
    settings: Callable[[], Settings]
    rules: Callable[[], RulesStatus]
    clock: Callable[[], datetime] = utcnow


# --------------------------------------------------------------------------------------------
# Matches


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _one_line(text: str) -> str:
    return " ".join(visible(text).split())


@dataclass(frozen=True, slots=True)
class MatchView:
    """One stored match as people read it: its rule, its article, the excerpt around the first
    hits (``excerpt``: segments, hits flagged), every hit, and each channel's delivery status."""

    id: int
    article_id: int
    matched_at: datetime
    rule_id: str
    rule_name: str
    severity: str
    heading: str
    """``[SEVERITY] Rule name: Article title``, one line."""
    title: str
    source: str
    link: str | None
    """The article's URL when it is an http(s) URL (nothing else is ever linked)."""
    location: str | None
    published: datetime | None
    excerpt: tuple[Segment, ...]
    hits: tuple[Hit, ...]
    deliveries: dict[str, str] = field(default_factory=dict)
    story_of: int | None = None

    @property
    def snippet(self) -> str:
        return "".join(segment.text for segment in self.excerpt)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "article": self.article_id,
            "matched_at": _when(self.matched_at),
            "rule": self.rule_id,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "title": self.title,
            "source": self.source,
            "link": self.link,
            "location": self.location,
            "published": _when(self.published),
            "snippet": self.snippet,
            "excerpt": [{"text": s.text, "hit": s.hit} for s in self.excerpt],
            "hits": [hit.as_dict() for hit in self.hits],
            "deliveries": self.deliveries,
            "story_of": self.story_of,
        }


def match_view(match: MatchRow, article: ArticleRow, deliveries: dict[str, str]) -> MatchView:
    alert = build_alert(match, article)
    return MatchView(
        id=alert.match_id,
        article_id=match.article_id,
        matched_at=alert.matched_at,
        rule_id=alert.rule_id,
        rule_name=_one_line(alert.rule_name) or alert.rule_id,
        severity=alert.severity.value,
        heading=title_line(alert),
        title=_one_line(alert.title) or "(untitled)",
        source=alert.source_id,
        link=safe_link(alert.link),
        location=alert.location,
        published=alert.published,
        excerpt=excerpt(alert),
        hits=alert.hits,
        deliveries=deliveries,
        story_of=match.story_of,
    )


@dataclass(frozen=True, slots=True)
class MatchPage:
    """One page of matches, newest first. ``next_before``: the ``before`` of the next page
    (None: this is the last); ``total``: every page's matches, when asked for."""

    matches: list[MatchView]
    limit: int
    next_before: int | None = None
    total: int | None = None


def matches_page(reads_from: Reads, query: MatchQuery) -> MatchPage:
    """The page of matches ``query`` asks for; raises BadParameter when its ``before`` is not a
    stored match. (Views are served by the daemon, after its start-up made the schema.)"""
    with reads_from.db.reading() as session:
        below = None
        if query.before is not None:
            below = reads.position(session, query.before)
            if below is None:
                raise BadParameter("before", f"there is no match {query.before}")
        # One more row than the page says whether a next page exists.
        rows = reads.find_matches(session, query.filters, query.limit + 1, below=below)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        statuses = repo.deliveries_for(session, [m.id for m, _a in rows if m.id is not None])
        total = reads.count_matches(session, query.filters) if query.total else None
    views = [
        match_view(match, article, {d.channel: d.status for d in statuses[match.id or 0]})
        for match, article in rows
    ]
    return MatchPage(views, query.limit, views[-1].id if more and views else None, total)


# --------------------------------------------------------------------------------------------
# One article


def marked(text: str, hits: Sequence[Hit]) -> tuple[Segment, ...]:
    """All of ``text`` as segments, the hits' spans flagged: by their stored offsets, or, where
    those do not point at the hit's text (offsets into another version of the article), not at
    all. Overlapping hits are one span; control characters and bidirectional overrides are
    dropped, line breaks kept."""
    spans = sorted(
        (hit.start, hit.end)
        for hit in hits
        if 0 <= hit.start < hit.end <= len(text) and text[hit.start : hit.end] == hit.text
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    segments: list[Segment] = []
    position = 0
    for start, end in merged:
        if start > position:
            segments.append(Segment(visible(text[position:start]), False))
        segments.append(Segment(visible(text[start:end]), True))
        position = end
    if position < len(text):
        segments.append(Segment(visible(text[position:]), False))
    return tuple(segment for segment in segments if segment.text)


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """A stored article, each of its fields with every hit of every match marked, and its
    matches (each with all its hits)."""

    id: int
    source: str
    title: str
    link: str | None
    location: str | None
    author: str | None
    published: datetime | None
    stored_at: datetime | None
    current: bool
    tags: tuple[str, ...]
    language: str | None
    fields: dict[str, tuple[Segment, ...]]
    """title, summary and body, as :func:`marked` segments (empty fields left out)."""
    matches: list[MatchView]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "link": self.link,
            "location": self.location,
            "author": self.author,
            "published": _when(self.published),
            "stored_at": _when(self.stored_at),
            "current": self.current,
            "tags": list(self.tags),
            "language": self.language,
            "text": {
                name: "".join(segment.text for segment in segments)
                for name, segments in self.fields.items()
            },
            "matches": [view.as_json() for view in self.matches],
        }


def article_page(reads_from: Reads, article_id: int) -> ArticlePage | None:
    """The article ``article_id`` with its matches; None when there is no such article."""
    with reads_from.db.reading() as session:
        found = reads.article_matches(session, article_id) if article_id <= reads.MAX_ID else None
        if found is None:
            return None
        ids = [match.id for match in found.matches if match.id is not None]
        statuses = repo.deliveries_for(session, ids)
    article = found.article
    assert article.id is not None
    views = [
        match_view(match, article, {d.channel: d.status for d in statuses[match.id or 0]})
        for match in found.matches
    ]
    hits = [hit for view in views for hit in view.hits]
    fields = {
        name: marked(text, [hit for hit in hits if hit.field == name])
        for name in ("title", "summary", "body")
        if (text := getattr(article, name))
    }
    return ArticlePage(
        id=article.id,
        source=article.source_id,
        title=_one_line(article.title) or "(untitled)",
        link=safe_link(article.url),
        location=article.location,
        author=article.author,
        published=article.published,
        stored_at=article.created_at,
        current=article.current,
        tags=tuple(article.tags),
        language=article.language,
        fields=fields,
        matches=views,
    )


# --------------------------------------------------------------------------------------------
# Sources, rules, deliveries


def sources(reads_from: Reads, now: datetime) -> list[SourceHealth]:
    """Every configured source's health (as ``monitor sources`` shows it), errors redacted."""
    with reads_from.db.reading() as session:
        feeds = repo.feed_states(session)
        folders = repo.source_states(session)
    health = source_health(reads_from.settings(), feeds, folders, now)
    return [replace(item, error=redact(item.error)) if item.error else item for item in health]


def rule_json(rule: Rule) -> dict[str, Any]:
    """A rule as the API lists it. ``channels`` None: the config's routes and ``notify``."""
    return {
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity.value,
        "enabled": rule.enabled,
        "file": rule.file,
        "line": rule.line,
        "channels": list(rule.notify) if rule.notify is not None else None,
        "tags": list(rule.tags),
        "sources": list(rule.sources) if rule.sources is not None else None,
    }


def problem_json(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "message": redact(problem.message)}


def deliveries(reads_from: Reads, query: DeliveryQuery) -> list[DeliveryView]:
    """The outbox, newest first, as ``monitor deliveries`` lists it (errors redacted)."""
    return operations.list_deliveries(
        reads_from.db,
        status=query.status,
        channel=query.channel,
        rule_id=query.rule,
        limit=query.limit,
    )
