"""A folder of documents: every supported file under it, recursively.

Only regular files inside the folder are read: a symlink is followed only when its target is a
regular file inside the folder, FIFOs and devices are never opened (they could block the daemon),
and files over ``max_file_size`` are refused. A file whose size and mtime match what was recorded
is not read again; one that failed is logged once and not retried until it changes.

Replicas: a folder is read by one replica at a time. A scan, and the reading of the files that
file-system events name, hold the folder's lock (:func:`monitor.store.locks.exclusive`, a
PostgreSQL advisory lock keyed by the source id); a replica that finds it held skips the scan
quietly (another replica is reading the folder), and tries the events' files again shortly.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path

import watchfiles

from monitor.documents import SUPPORTED_SUFFIXES, parse_document
from monitor.errors import DocumentError, SourceError
from monitor.models import Article
from monitor.pipeline import IngestResult, Pipeline
from monitor.settings import FolderSourceSettings
from monitor.sources.parsing import DocumentPool, DocumentTimeout, ParseError
from monitor.store import repo
from monitor.store.locks import exclusive
from monitor.store.tables import FileRow, utcnow
from monitor.yamlfile import read_regular

log = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 200
"""Events are grouped over this long, so a file written in several steps is read once."""


class FolderSource:
    kind = "folder"

    def __init__(
        self,
        settings: FolderSourceSettings,
        pipeline: Pipeline,
        *,
        parsers: DocumentPool | None = None,
    ) -> None:
        self.settings = settings
        self.id = settings.id
        self.root = settings.path
        self.pipeline = pipeline
        self.parsers = parsers
        """Where files are read: the daemon's parser processes, under their time and memory
        limits; in this process when None (tools and tests)."""

    # -- scanning ---------------------------------------------------------------------------

    def scan(self, stop: threading.Event | None = None) -> IngestResult:
        """Read every new or changed supported file under the folder, until ``stop`` is set;
        nothing while another replica is reading the folder."""
        if not self.root.is_dir():
            raise SourceError(f"source {self.id}: folder {self.root} does not exist")
        with exclusive(self.pipeline.db, self._lock_name) as mine:
            if not mine:
                log.debug(
                    "source %s: another replica is reading the folder; scan skipped",
                    self.id,
                    extra={"source_id": self.id, "stage": "source"},
                )
                return IngestResult()
            return self._walk(self.root, stop)

    def read(
        self, paths: Iterable[Path], stop: threading.Event | None = None
    ) -> IngestResult | None:
        """:meth:`process` each of ``paths`` (the files of file-system events); None, having read
        nothing, while another replica is reading the folder (try again shortly)."""
        with exclusive(self.pipeline.db, self._lock_name) as mine:
            if not mine:
                log.debug(
                    "source %s: another replica is reading the folder; events wait",
                    self.id,
                    extra={"source_id": self.id, "stage": "watch"},
                )
                return None
            result = IngestResult()
            for path in paths:
                result += self.process(path, stop)
            return result

    @property
    def _lock_name(self) -> str:
        return f"folder:{self.id}"

    def _walk(self, top: Path, stop: threading.Event | None) -> IngestResult:
        # What is known of every file, read once: a rescan of an unchanged folder then costs
        # one query and a stat per file, not a transaction per file.
        with self.pipeline.db.session() as session:
            known = repo.file_states(session, self.id)
        result = IngestResult()
        for directory, dirnames, filenames in os.walk(top):
            # Hidden folders hold tools' state, not documents; sorted for a stable order.
            dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
            for name in sorted(filenames):
                if stop is not None and stop.is_set():
                    return result
                result += self.process(Path(directory) / name, stop, known)
        return result

    def process(
        self,
        path: Path,
        stop: threading.Event | None = None,
        known_states: dict[str, FileRow] | None = None,
    ) -> IngestResult:
        """Read one file if it is new or changed (or every file under a folder moved in).

        ``known_states`` (every file state of the source) spares a lookup per file in a scan.
        Errors are recorded and logged once, never raised: one bad file never stops the others.
        """
        relative = self._relative(path)
        if relative is None:
            return IngestResult()
        try:
            info = path.lstat()
        except FileNotFoundError:
            return IngestResult()  # removed between the event and now
        except OSError as exc:
            log.warning("cannot stat %s: %s", path, exc, extra=self._extra(relative))
            return IngestResult()
        if stat.S_ISDIR(info.st_mode):
            # A folder moved or copied in arrives as one event: read what it holds.
            return self._walk(path, stop)
        if not _wanted(path.name):
            return IngestResult()
        if known_states is not None:
            known = known_states.get(relative)
        else:
            with self.pipeline.db.session() as session:
                known = repo.file_state(session, self.id, relative)
        stat_key = (info.st_size, info.st_mtime_ns)
        if (
            known is not None
            and (known.size, known.mtime_ns) == stat_key
            and known.digest != _RETRY
        ):
            return IngestResult()
        try:
            data = self._read(path, info)
            digest = hashlib.sha256(data).hexdigest()
            state = FileRow(
                source_id=self.id,
                path=relative,
                size=info.st_size,
                mtime_ns=info.st_mtime_ns,
                digest=digest,
                seen_at=utcnow(),
            )
            if known is not None and known.digest == digest and known.error is None:
                return self.pipeline.ingest(self.id, [], state=state)
            if self.parsers is None:
                parsed = parse_document(path.name, data)
            else:
                parsed = self.parsers.parse(path.name, data)
            several = len(parsed) > 1 or path.suffix.lower() in _FEED_SUFFIXES
            articles = [self._identify(article, relative, several=several) for article in parsed]
        except (DocumentError, OSError) as exc:
            reason = str(exc) if isinstance(exc, DocumentError) else exc.strerror or str(exc)
            # What a fix outside the file can cure (permissions, the size cap), and a parse that
            # ran out of time (the machine may have been busy), is tried again at every scan; a
            # malformed file only once it changes. Either is logged once.
            retry = isinstance(exc, OSError | FileTooLarge | DocumentTimeout)
            if known is None or known.error != reason:
                log.warning("skipped %s: %s", relative, reason, extra=self._extra(relative))
            self._record_failure(relative, info, reason, retry=retry)
            return IngestResult()
        except ParseError as exc:
            # No parser process (it did not start, or the daemon is stopping): not the file's
            # fault, so nothing is recorded and the next scan reads it.
            log.warning("cannot read %s now: %s", relative, exc, extra=self._extra(relative))
            return IngestResult()
        except Exception as exc:
            # A parser bug must cost one file, not the scan: record it so it is not retried.
            log.exception("failed to read %s", relative, extra=self._extra(relative))
            self._record_failure(relative, info, f"unexpected error: {exc!r}"[:500])
            return IngestResult()
        return self.pipeline.ingest(self.id, articles, state=state)

    def _read(self, path: Path, info: os.stat_result) -> bytes:
        """The bytes of a regular file inside the folder, within the cap; else DocumentError."""
        if stat.S_ISLNK(info.st_mode):
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                # Its target may appear later: an OSError is tried again at every scan.
                raise OSError(errno.ENOENT, "broken symlink") from None
            except RuntimeError:  # Python 3.11-3.12 raise it for a loop, later ones OSError
                raise DocumentError("symlink loop") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise DocumentError("symlink loop") from None
                raise
            if not target.is_relative_to(self.root.resolve()):
                raise DocumentError("symlink points outside the folder")
            info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError("not a regular file")
        cap = self.settings.max_file_size
        if info.st_size > cap:
            raise FileTooLarge(f"file too large ({info.st_size} bytes, limit {cap})")
        # Checked again on the open file: the path may have been swapped for a FIFO since lstat.
        data = read_regular(path, cap + 1)
        if len(data) > cap:
            raise FileTooLarge(f"file too large (over {cap} bytes)")
        return data

    def _identify(self, article: Article, relative: str, *, several: bool) -> Article:
        """The article's identity: the file for a one-article document; within a feed or list,
        the entry's GUID, else its URL, else its text (entries must not share the file's key)."""
        key = relative
        if article.guid or article.url:
            key = f"{relative}#{article.guid or article.url}"
        elif several:
            key = f"{relative}#{article.content_hash[:16]}"
        tags = tuple(dict.fromkeys((*article.tags, *self.settings.tags)))
        return replace(article, source_id=self.id, key=key, location=relative, tags=tags)

    def _record_failure(
        self, relative: str, info: os.stat_result, reason: str, *, retry: bool = False
    ) -> None:
        state = FileRow(
            source_id=self.id,
            path=relative,
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            digest=_RETRY if retry else "",
            error=reason,
            seen_at=utcnow(),
        )
        with self.pipeline.db.session() as session:
            repo.save_file_state(session, state)

    def _relative(self, path: Path) -> str | None:
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        if any(part.startswith(".") for part in relative.parts):
            return None
        # Non-UTF-8 names arrive as surrogate escapes; store a printable, valid UTF-8 form.
        return os.fsencode(relative).decode("utf-8", "backslashreplace")

    def _extra(self, relative: str) -> dict[str, str]:
        return {"source_id": self.id, "path": relative, "stage": "source"}

    # -- watching ---------------------------------------------------------------------------

    async def changes(self, stop: asyncio.Event) -> AsyncIterator[list[Path]]:
        """File-system events under the folder, grouped, as the paths to (re)read."""
        async for events in watchfiles.awatch(
            self.root,
            stop_event=stop,
            debounce=WATCH_DEBOUNCE_MS,
            step=50,
            recursive=True,
        ):
            if not self.root.is_dir() or any(Path(name) == self.root for _, name in events):
                # The folder itself was removed or replaced: this watch follows a dead inode.
                # Ending it lets the caller watch (and rescan) the folder anew.
                return
            paths = sorted(
                {Path(name) for change, name in events if change != watchfiles.Change.deleted}
            )
            if paths:
                yield paths


class FileTooLarge(DocumentError):
    """The file is larger than the source's max_file_size."""


_RETRY = "retry"
"""The digest of a file that failed for a reason outside it: it is tried again at every scan."""

_FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".json"})


def _wanted(name: str) -> bool:
    if name.startswith(".") or name.endswith("~"):
        return False
    return Path(name).suffix.lower() in SUPPORTED_SUFFIXES
