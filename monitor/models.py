"""Plain data that flows through the pipeline: Article -> RuleMatch (with Hits) -> Alert.

No I/O here. Everything is frozen: a stage builds a new value instead of editing the one it got.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

FIELDS: tuple[str, ...] = ("title", "summary", "body")
"""The article fields a rule searches."""


class Severity(enum.StrEnum):
    """How urgent a rule's matches are, from least to most."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class Article:
    """One article as a source produced it.

    ``key`` identifies the article within its source (a file's path, a feed entry's GUID, ...);
    ``location`` is what a person reads to find it when there is no URL (a file path).
    ``published`` is timezone-aware UTC or None.
    """

    title: str
    body: str = ""
    summary: str = ""
    url: str | None = None
    author: str | None = None
    published: datetime | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    guid: str | None = None
    source_id: str = ""
    key: str = ""
    location: str | None = None

    def field_text(self, name: str) -> str:
        """The text of a searchable field (see FIELDS)."""
        value: str = getattr(self, name)
        return value

    @property
    def content_hash(self) -> str:
        """A digest of the article's text, used to recognise the same content seen again."""
        digest = hashlib.sha256()
        for part in (self.title, self.summary, self.body):
            digest.update(" ".join(part.split()).encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence of a rule's term in an article: ``text == field_text[start:end]``."""

    term: str
    field: str
    start: int
    end: int
    text: str
    kind: str = "keyword"  # "actor" or "keyword"

    def as_dict(self) -> dict[str, str | int]:
        """The hit as JSON-ready data (stored with matches, printed by ``monitor test``).
        Not dataclasses.asdict, which deep-copies field by field and is ten times slower."""
        return {
            "term": self.term,
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched an article, with every hit that made it match."""

    rule_id: str
    severity: Severity
    hits: tuple[Hit, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything a channel needs to tell a person about one match."""

    match_id: int
    rule_id: str
    rule_name: str
    severity: Severity
    title: str
    source_id: str
    link: str | None
    location: str | None
    published: datetime | None
    matched_at: datetime
    hits: tuple[Hit, ...]
    fields: dict[str, str] = field(default_factory=dict)
    """The text of each field that has hits, so a snippet can be cut around them."""
    outlets: tuple[Outlet, ...] = ()
    """Other outlets that reported the same story ("also reported by"), oldest first."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """Another article telling the story of an alert, folded into it rather than sent again."""

    source_id: str
    title: str
    link: str | None
    published: datetime | None


@dataclass(frozen=True, slots=True)
class Digest:
    """Several alerts for one channel, sent as one message.

    ``reason`` says why they were gathered: ``throttle`` (a rule's window after its first alert),
    ``schedule`` (the channel takes digests only) or ``burst`` (more alerts came due at once than
    the channel's burst allows). ``since`` and ``until`` bound the window they were gathered in,
    when there is one.
    """

    channel: str
    reason: str
    alerts: tuple[Alert, ...]
    since: datetime | None = None
    until: datetime | None = None
