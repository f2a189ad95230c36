"""Sources: where articles come from. One module per source type; the registry below maps a
config ``type`` to its class, checked when the daemon starts.

Contract of a source: ``scan()`` (blocking, run in a thread) reads what is new or changed since
the last scan and hands it to the pipeline, returning what was ingested; an unreadable item is
recorded and logged once, never raised; a SourceError means the whole source could not be read
this time (the caller records it and tries again at the next interval).
"""

from __future__ import annotations

from monitor.sources.folder import FolderSource

SOURCE_TYPES: dict[str, type[FolderSource]] = {"folder": FolderSource}
"""Source types run one object per source. Feeds are run together by
:class:`monitor.sources.feed.FeedSources`, which shares one fetcher and one parser pool among
them and schedules them from the database."""
