"""Sources: where articles come from. One module per source type; :mod:`.registry` maps a config
``type`` to its class, checked when the daemon starts.

Contract of a folder source: ``scan()`` (blocking, run in a thread) reads what is new or changed
since the last scan and hands it to the pipeline, returning what was ingested; an unreadable item
is recorded and logged once, never raised; a SourceError means the whole source could not be read
this time (the caller records it and tries again at the next interval). Feeds are run together
by :class:`monitor.sources.feed.FeedSources` (see its module).

This package module imports nothing: the parser processes import :mod:`.parsing` alone, and must
not load the store, the matcher and the rest with it.
"""
