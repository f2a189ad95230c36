"""Source types: a config ``type`` -> the class that runs one source of that type."""

from __future__ import annotations

from monitor.sources.folder import FolderSource

SOURCE_TYPES: dict[str, type[FolderSource]] = {"folder": FolderSource}
"""Source types run one object per source. Feeds are run together by
:class:`monitor.sources.feed.FeedSources`, which shares one fetcher and one parser pool among
them and schedules them from the database."""
