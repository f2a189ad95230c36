"""Source health as people read it: one record per configured source, from the stored state.

``status`` is one word:

* ``new``: never polled yet;
* ``ok``: the last poll succeeded;
* ``failing``: the last poll failed (``reason`` and ``error`` say why; ``failures`` how often in a
  row; ``next_check`` when it is tried again, after backoff);
* ``disabled``: the feed is no longer polled (the server said 410 Gone);
* ``stale``: polls succeed, but the feed has published nothing new for longer than
  ``stale_after`` (default 7 days): a feed that silently died looks like this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.logs import SECRET_NAME
from monitor.settings import FeedSourceSettings, Settings
from monitor.store.tables import FeedRow, SourceRow


@dataclass(frozen=True, slots=True)
class SourceHealth:
    id: str
    type: str
    status: str
    location: str
    last_success: datetime | None = None
    last_checked: datetime | None = None
    next_check: datetime | None = None
    failures: int = 0
    reason: str | None = None
    error: str | None = None
    items_seen: int | None = None
    last_item: datetime | None = None
    posting_interval: timedelta | None = None

    def as_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "location": self.location,
            "last_success": when(self.last_success),
            "last_checked": when(self.last_checked),
            "next_check": when(self.next_check),
            "failures": self.failures,
            "reason": self.reason,
            "error": self.error,
            "items_seen": self.items_seen,
            "last_item": when(self.last_item),
            "posting_interval_seconds": (
                self.posting_interval.total_seconds() if self.posting_interval else None
            ),
        }


def url_secrets(url: str) -> list[str]:
    """The secrets a feed URL carries: the password of a user:password@ part (the user when it
    has none: a token), and the values of query parameters named like credentials. They are
    masked wherever the URL is shown."""
    parts = urlsplit(url)
    found = []
    if "@" in parts.netloc:
        # user:password@, or a token as the user (https://TOKEN@host/, as for GitHub's feeds).
        found = [parts.password] if parts.password else [parts.username] if parts.username else []
    if parts.query:
        found += [
            value
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if value and SECRET_NAME.match(name)
        ]
    return found


def display_url(url: str) -> str:
    """``url`` with its secrets (see :func:`url_secrets`) replaced by ``***``: the password of a
    user:password@ part (or of a user with no password: a token), and the values of
    credential-like query parameters."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username or ''}:***" if parts.password is not None else "***"
        parts = parts._replace(netloc=f"{user}@{host}")
    if parts.query and any(SECRET_NAME.match(name) for name, _ in parse_qsl(parts.query)):
        query = [
            (name, "***" if value and SECRET_NAME.match(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def source_health(
    settings: Settings,
    feeds: Mapping[str, FeedRow],
    folders: Mapping[str, SourceRow],
    now: datetime,
) -> list[SourceHealth]:
    """The health of every configured source, in config order."""
    found = []
    stale_after = settings.fetching.stale_after
    for source in settings.sources:
        if isinstance(source, FeedSourceSettings):
            found.append(_feed(source, feeds.get(source.id), now, stale_after))
            continue
        row = folders.get(source.id)
        location = str(source.path)
        if row is None or row.last_polled_at is None:
            found.append(SourceHealth(source.id, source.type, "new", location))
            continue
        found.append(
            SourceHealth(
                source.id,
                source.type,
                "failing" if row.consecutive_failures else "ok",
                location,
                last_success=row.last_success_at,
                last_checked=row.last_polled_at,
                failures=row.consecutive_failures,
                error=row.last_error,
            )
        )
    return found


def _feed(
    source: FeedSourceSettings, row: FeedRow | None, now: datetime, stale_after: timedelta
) -> SourceHealth:
    if row is None or row.url != source.url:
        return SourceHealth(source.id, "feed", "new", display_url(source.url))
    if row.disabled:
        status = "disabled"
    elif row.consecutive_failures:
        status = "failing"
    elif row.last_success_at is None:
        status = "new"
    elif (row.last_item_at or row.last_success_at) < now - stale_after:
        status = "stale"
    else:
        status = "ok"
    return SourceHealth(
        source.id,
        "feed",
        status,
        display_url(row.current_url or source.url),
        last_success=row.last_success_at,
        last_checked=row.last_checked_at,
        next_check=row.next_check_at,
        failures=row.consecutive_failures,
        reason=row.error_reason,
        error=row.disabled or row.last_error,
        items_seen=row.items_seen,
        last_item=row.last_item_at,
        posting_interval=(
            timedelta(seconds=row.posting_interval) if row.posting_interval is not None else None
        ),
    )
