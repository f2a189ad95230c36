"""The database tables.

sources    one row per configured source: its health
feeds      one row per feed source: its schedule (next check), HTTP validators (ETag,
           Last-Modified), current URL after a confirmed permanent redirect, health, and the
           claim of the replica polling it now
subscriptions  one row per feed subscribed to through a WebSub hub: topic, secret, lease
files      one row per file seen in a folder source: size, mtime and digest, so an unchanged or
           known-bad file is not read again
articles   one row per version of an article: (source_id, key) identifies the article and at most
           one version is current; an edit adds a version, so every match keeps the text it
           matched (the evidence) and its offsets stay true; content_hash, canonical_url and
           guid find the same article arriving by another path
matches    one row per (article, rule): a rule alerts at most once per article
deliveries the outbox: one row per (match, channel), written in the same transaction as the match
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
"""Names for constraints the tables leave unnamed, so that a migration can drop or alter them by
name on both backends. They are PostgreSQL's own default names (and SQLAlchemy's default for
indexes), so a PostgreSQL database created before the convention has the very same names; on
SQLite, whose older databases left them unnamed, a migration passes this convention to
``op.batch_alter_table(..., naming_convention=NAMING_CONVENTION)`` to find them."""

SQLModel.metadata.naming_convention = NAMING_CONVENTION


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"

    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=16)
    last_polled_at: datetime | None = _when()
    last_success_at: datetime | None = _when()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    consecutive_failures: int = 0


class FeedRow(SQLModel, table=True):
    """A feed's state, kept across restarts. ``next_check_at`` is None for a feed no longer in
    the config (its history stays); ``disabled`` holds why a feed is no longer polled (410 Gone)."""

    __tablename__ = "feeds"

    source_id: str = Field(primary_key=True, max_length=64)
    url: str = Field(sa_column=Column(Text, nullable=False))
    """The URL in the config; when the config changes it, the state below starts afresh."""
    current_url: str | None = Field(default=None, sa_column=Column(Text))
    """Where the feed moved to (a permanent redirect whose target served a valid feed)."""
    etag: str | None = Field(default=None, sa_column=Column(Text))
    last_modified: str | None = Field(default=None, max_length=128)
    next_check_at: datetime | None = _when(index=True)
    last_checked_at: datetime | None = _when()
    last_success_at: datetime | None = _when()
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    error_reason: str | None = Field(default=None, max_length=32)
    last_error_at: datetime | None = _when()
    consecutive_failures: int = 0
    disabled: str | None = Field(default=None, sa_column=Column(Text))
    items_seen: int = 0
    """New articles stored from this feed, in all."""
    last_item_at: datetime | None = _when()
    """When the newest entry was published (or first seen, when it has no date)."""
    posting_interval: float | None = None
    """Median seconds between recent posts, the basis of the adaptive interval."""
    # No index for the claim: the due query walks the next_check_at index, and the rows it passes
    # over because they are claimed are only the feeds being polled now (a few hundred at most).
    claimed_by: str | None = Field(default=None, max_length=200)
    """The replica polling the feed now (see monitor.store.claims); None: none is."""
    claimed_until: datetime | None = _when()
    """When that claim's lease ends, by the database's clock: after it, any replica may claim the
    feed again. The holder renews it while it polls; a save checks ``claimed_by``, not this."""


class SubscriptionRow(SQLModel, table=True):
    """A feed's WebSub subscription: its own row, so a poll saving the feed's state and a hub
    verifying the subscription at the same moment never overwrite each other."""

    __tablename__ = "subscriptions"

    source_id: str = Field(primary_key=True, max_length=64)
    hub: str = Field(sa_column=Column(Text, nullable=False))
    topic: str = Field(sa_column=Column(Text, nullable=False))
    secret: str = Field(max_length=128, repr=False)
    """Signs pushed content (HMAC); never logged."""
    state: str = Field(max_length=16)
    """requested (asked, not verified yet), active, denied (by the hub) or failed (the request)."""
    requested_at: datetime | None = _when()
    lease_until: datetime | None = _when()
    last_push_at: datetime | None = _when()
    detail: str | None = Field(default=None, sa_column=Column(Text))


class FileRow(SQLModel, table=True):
    __tablename__ = "files"

    source_id: str = Field(primary_key=True, max_length=64)
    path: str = Field(primary_key=True, max_length=1024)
    # 64-bit: a modification time in nanoseconds (and a size past 2 GiB) overflows PostgreSQL's
    # INTEGER. SQLite's integers are 64-bit whatever the declared type.
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    digest: str = Field(max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    seen_at: datetime | None = _when()


class ArticleRow(SQLModel, table=True):
    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_source_key", "source_id", "key"),
        Index(
            "uq_articles_current",
            "source_id",
            "key",
            unique=True,
            sqlite_where=text("current"),
            postgresql_where=text("current"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(max_length=64)
    key: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str = Field(max_length=64, index=True)
    url: str | None = Field(default=None, sa_column=Column(Text))
    canonical_url: str | None = Field(default=None, max_length=2048, index=True)
    guid: str | None = Field(default=None, max_length=1024, index=True)
    current: bool = True
    title: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    author: str | None = Field(default=None, sa_column=Column(Text))
    language: str | None = Field(default=None, max_length=32)
    location: str | None = Field(default=None, sa_column=Column(Text))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    published: datetime | None = _when()
    created_at: datetime | None = _when(nullable=False, index=True)
    updated_at: datetime | None = _when(nullable=False)


class MatchRow(SQLModel, table=True):
    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("article_id", "rule_id", name="uq_matches_article_rule"),
        # A rule's recent matches (story grouping, corroboration, throttle windows) by one
        # index range, however many matches other rules have.
        Index("ix_matches_rule_created", "rule_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    rule_id: str = Field(max_length=128)
    rule_name: str = Field(sa_column=Column(Text, nullable=False))
    severity: str = Field(max_length=16)
    hits: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _when(nullable=False, index=True)
    fingerprint: int | None = Field(default=None, sa_column=Column(BigInteger))
    """SimHash of the article's text (see monitor.identity.fingerprint), to fold rewrites."""
    # No index of its own: SQLite would pick it for "story_of IS NULL" (nearly every row) over
    # the rule's index, and scan every story on each lookup.
    story_of: int | None = Field(default=None, foreign_key="matches.id")
    """The match whose alert this one was folded into (the same story, reported again by another
    outlet): it has no deliveries of its own."""
    waiting: bool = False
    """Held, without deliveries, until matches of its rule from ``min_sources`` distinct
    sources arrive within the rule's window (then the match that completes them alerts)."""


class OutletRow(SQLModel, table=True):
    """Another outlet that reported the story of a match ("also reported by" in its alert)."""

    __tablename__ = "outlets"
    __table_args__ = (UniqueConstraint("match_id", "source_id", "key", name="uq_outlets"),)

    id: int | None = Field(default=None, primary_key=True)
    match_id: int = Field(foreign_key="matches.id", index=True)
    source_id: str = Field(max_length=64)
    key: str = Field(max_length=1024)
    """The reporting article's key in its source."""
    title: str = Field(sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, sa_column=Column(Text))
    published: datetime | None = _when()
    created_at: datetime | None = _when(nullable=False)


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("match_id", "channel", name="uq_deliveries_match_channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    match_id: int = Field(foreign_key="matches.id", index=True)
    channel: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    """pending (due at next_attempt_at), sent, or dead (gave up; last_error says why)."""
    attempts: int = 0
    next_attempt_at: datetime | None = _when()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime | None = _when()
    created_at: datetime | None = _when(nullable=False)
    batch: str | None = Field(default=None, max_length=200)
    """Rows of one channel with the same batch are sent together, as one digest (a rule's
    throttle window, a digest-only channel's slot); None: sent on its own."""
    retry_since: datetime | None = _when()
    """When an operator last retried the row by hand; the row is given up on ``retry_for`` after
    this instead of after ``created_at``. None: never retried."""
    claims: int = 0
    """How many times a worker claimed the row to send it."""
    in_flight: bool = False
    """A claim is open: set by a claim, cleared when its outcome is recorded. Found set by the
    next claim, it means the previous claim ended with no outcome (its worker died or its send
    was cancelled), so the service may already have the alert."""
    redeliveries: int = 0
    """Claims that took the row over from such an open claim: possible duplicates sent."""
