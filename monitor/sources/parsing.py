"""Feed bodies -> articles (and item pages -> their main text, and a folder's files -> their
articles), in worker processes with a time and a memory limit.

feedparser is lenient, and a crafted document of a few hundred kilobytes can make it spend
seconds and gigabytes; so can the standard library's e-mail and HTML parsers. So parsing never
runs in the daemon's process: a small pool of worker processes parses one document each at a
time, each worker under an address-space limit, and the daemon waits at most ``timeout`` seconds.
A worker that runs out of time is killed and replaced; one that runs out of memory reports it (or
dies) and is replaced too. Either way only that feed or file fails, with the reason, and the
others go on.

:class:`ParserPool` serves the feeds, from the event loop; :class:`DocumentPool` serves the folder
scans, which run in threads. ``parse_body``, ``extract_page`` and
:func:`monitor.documents.parse_document` are the pure functions the workers run; tests and tools
may call them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import resource
import subprocess
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from monitor.documents import parse_document, parse_feed_document
from monitor.documents.decode import decode_text
from monitor.errors import DocumentError, NotAFeedError, SourceError
from monitor.identity import canonical_url
from monitor.models import Article

log = logging.getLogger(__name__)

_DAYS = {
    name: number
    for number, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_HEAD = 64 * 1024
"""The channel elements that steer scheduling come before the items: only this much is searched."""
_TTL = re.compile(rb"<ttl>\s*(\d{1,6})\s*</ttl>", re.IGNORECASE)
_SKIP_HOURS = re.compile(rb"<skipHours>(.*?)</skipHours>", re.IGNORECASE | re.DOTALL)
_SKIP_DAYS = re.compile(rb"<skipDays>(.*?)</skipDays>", re.IGNORECASE | re.DOTALL)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>", re.IGNORECASE)
_DAY = re.compile(rb"<day>\s*([A-Za-z]{1,12})\s*</day>", re.IGNORECASE)
_LINK = re.compile(rb"<(?:atom:)?link\b([^>]{1,2000})>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([A-Za-z:]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True, slots=True)
class FeedHints:
    """What an RSS channel says about when to poll it (RSS 2.0: ttl, skipHours, skipDays)."""

    ttl_minutes: int | None = None
    skip_hours: frozenset[int] = frozenset()
    """Hours (0-23, GMT) in which the feed asks not to be read."""
    skip_days: frozenset[int] = frozenset()
    """Days (0 = Monday) on which the feed asks not to be read."""
    hub: str | None = None
    """A WebSub hub the feed advertises (``<link rel="hub">``)."""
    self_url: str | None = None
    """The feed's own URL as it states it (``<link rel="self">``): the WebSub topic."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    articles: list[Article]
    hints: FeedHints
    truncated: int = 0
    """Entries dropped beyond the per-feed item cap."""
    identities: tuple[tuple[str, str | None], ...] = ()
    """Each article's content hash and canonical URL, in order, computed by the worker (they
    cost the daemon's writer, which every feed waits for, more than parsing costs a worker)."""


class ParseError(SourceError):
    """The feed body could not be parsed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_body(data: bytes, max_items: int = 1000, base_url: str | None = None) -> ParsedFeed:
    """The entries of a fetched feed body (at most ``max_items``, the first ones, which feeds
    list newest first) and its scheduling hints. Raises DocumentError when it is not a feed."""
    articles = parse_feed_document(data, base_url)
    dropped = max(0, len(articles) - max_items)
    articles = articles[:max_items]
    identities = tuple((article.content_hash, canonical_url(article.url)) for article in articles)
    return ParsedFeed(articles, feed_hints(data), dropped, identities)


def extract_page(data: bytes) -> str:
    """The main text of an article's web page (trafilatura, tuned for precision: navigation,
    comments and boilerplate left out), one blank line between paragraphs; "" when none."""
    # Imported on first use: only feeds with full_text need it, and it would add tens of
    # megabytes to every parser process.
    import trafilatura  # noqa: PLC0415

    text = trafilatura.extract(
        decode_text(data),
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        deduplicate=False,
    )
    if not text:
        return ""
    return "\n\n".join(line.strip() for line in text.splitlines() if line.strip())


def feed_hints(data: bytes) -> FeedHints:
    head = data[:_HEAD]
    ttl = _TTL.search(head)
    hours = _SKIP_HOURS.search(head)
    days = _SKIP_DAYS.search(head)
    links: dict[str, str] = {}
    for found in _LINK.finditer(head):
        attributes = {
            name.lower(): (double or single).decode("utf-8", "replace").strip()
            for name, double, single in _ATTRIBUTE.findall(found.group(1))
        }
        href = attributes.get(b"href", "")
        for rel in attributes.get(b"rel", "").lower().split():
            if href and rel in ("hub", "self"):
                links.setdefault(rel, html.unescape(href))
    return FeedHints(
        hub=links.get("hub"),
        self_url=links.get("self"),
        ttl_minutes=int(ttl.group(1)) if ttl else None,
        skip_hours=frozenset(
            int(hour) % 24 for hour in (_HOUR.findall(hours.group(1)) if hours else [])
        ),
        skip_days=frozenset(
            _DAYS[day.decode().lower()]
            for day in (_DAY.findall(days.group(1)) if days else [])
            if day.decode().lower() in _DAYS
        ),
    )


# -- the worker side ----------------------------------------------------------------------------


def _limit_memory(limit: int) -> None:
    """Cap this process's address space at what it uses now plus ``limit`` bytes."""
    with contextlib.suppress(OSError, ValueError):
        pages = Path("/proc/self/statm").read_text(encoding="ascii").split()[0]
        current = int(pages) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (current + limit, current + limit))


def bug_report(exc: BaseException) -> str:
    """A parser's unexpected exception in one line, with where it was raised (file, line and
    function; the traceback stays in the worker): enough to report the bug from a log line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        frame = frames[-1]
        where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    return f"parser failed: {type(exc).__name__}: {exc}{where}"


def _job(kind: str, data: bytes, first: Any, second: Any) -> Any:
    """Run one job: ("feed", body, max_items, base_url), ("page", body, None, None) or
    ("document", the file's bytes, its name, None)."""
    if kind == "feed":
        return parse_body(data, first, second)
    if kind == "page":
        return extract_page(data)
    return parse_document(first, data)


def _serve(requests: Connection, replies: Connection, memory_limit: int) -> None:
    """A worker's loop: receive a job (see _job); send back ("ok", its result) or (reason,
    message)."""
    _limit_memory(memory_limit)
    while True:
        try:
            kind, data, first, second = requests.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            replies.send(("memory", "the document exceeded the memory limit"))
            return
        reply: tuple[str, Any]
        try:
            reply = ("ok", _job(kind, data, first, second))
        except NotAFeedError as exc:
            reply = ("not_a_feed", str(exc))
        except DocumentError as exc:
            reply = ("parse_error", str(exc))
        except MemoryError:
            reply = ("memory", "parsing exceeded the memory limit")
        except Exception as exc:  # noqa: BLE001 (a parser bug is this feed's failure, reported)
            reply = ("parse_error", bug_report(exc))
        del data
        try:
            replies.send(reply)
        except MemoryError:
            replies.send(("memory", "the parsed feed exceeded the memory limit"))
        if reply[0] == "memory":
            return  # the heap may be fragmented past use: let the pool start a fresh worker


# -- the daemon side ----------------------------------------------------------------------------


_START_TIMEOUT = 60.0
"""Seconds a new parser process may take to start (a loaded machine can be slow)."""
_WORKER = "from monitor.sources.parsing import _worker_main; _worker_main()"
"""A worker's program: the module imported by its name, so what it sends back unpickles here."""


def _worker_main() -> None:
    """A worker's main: jobs on its stdin, replies on its stdout; argv[1] is the memory limit."""
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print from a library must not corrupt the replies
    replies.send(("ready", None))  # the parsers are imported: jobs are timed from now on
    _serve(requests, replies, int(sys.argv[1]))


class _Worker:
    """One parser process: a fresh interpreter that imports the parsers and nothing else of the
    daemon (not a fork of the daemon, with its threads, connections and memory, nor a re-import
    of its main module as multiprocessing's spawn would do)."""

    def __init__(self, memory_limit: int) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-c", _WORKER, str(memory_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self._requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        # Wait until the interpreter has started and imported the parsers, so that the first
        # job's time limit is not spent on start-up.
        try:
            ready = self._replies.poll(_START_TIMEOUT) and self._replies.recv() == ("ready", None)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ParseError("parser_start", "a parser process did not start")

    def call(self, job: tuple[str, bytes, Any, Any], timeout: float) -> tuple[str, Any]:
        """Blocking: send one job (see _job) and wait up to ``timeout`` seconds for its reply."""
        self._requests.send(job)
        if not self._replies.poll(timeout):
            raise TimeoutError
        reply: tuple[str, Any] = self._replies.recv()
        return reply

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(timeout=5)
        for connection in (self._requests, self._replies):
            with contextlib.suppress(Exception):
                connection.close()


class ParserPool:
    """``workers`` parser processes; :meth:`parse` is safe to call from many tasks at once."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout: float = 10.0,
        memory_limit: int = 512 * 1024 * 1024,
        max_items: int = 1000,
    ) -> None:
        self.size = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.max_items = max_items
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._free = asyncio.Semaphore(self.size)
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="parser")
        self._closed = False

    async def parse(self, data: bytes, base_url: str | None = None) -> ParsedFeed:
        """Parse one feed body (fetched from ``base_url``) in a worker; raise ParseError with a
        reason slug on any failure: not_a_feed, parse_error, parse_timeout, parse_memory."""
        parsed: ParsedFeed = await self._call(("feed", data, self.max_items, base_url))
        return parsed

    async def extract(self, data: bytes) -> str:
        """The main text of a web page, extracted in a worker; ParseError as for :meth:`parse`."""
        text: str = await self._call(("page", data, None, None))
        return text

    async def _call(self, job: tuple[str, bytes, Any, Any]) -> Any:
        async with self._free:
            if self._closed:
                raise ParseError("stopped", "the parser pool is shut down")
            worker = self._idle.pop() if self._idle else await self._start()
            self._busy.add(worker)
            keep = False
            try:
                loop = asyncio.get_running_loop()
                kind, value = await loop.run_in_executor(
                    self._threads, worker.call, job, self.timeout
                )
            except TimeoutError:
                raise ParseError(
                    "parse_timeout", f"parsing took longer than {self.timeout:g} s"
                ) from None
            except (EOFError, OSError):
                raise ParseError(
                    "parse_memory",
                    "the parser process died (over its memory limit, or crashed)",
                ) from None
            else:
                keep = kind != "memory"
            finally:
                self._busy.discard(worker)
                if keep and not self._closed:
                    self._idle.append(worker)
                else:
                    worker.kill()
            if kind == "ok":
                return value
            raise ParseError("parse_memory" if kind == "memory" else kind, value)

    async def _start(self) -> _Worker:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, _Worker, self.memory_limit)

    def close(self) -> None:
        """Stop every worker; calls in flight fail with ParseError."""
        self._closed = True
        workers = [*self._idle, *self._busy]
        self._idle = []
        for worker in workers:
            worker.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)


class DocumentTimeout(DocumentError):
    """Reading a file took longer than the limit, or its parser process died: the file may
    read fine another time (on a less loaded machine), so a folder tries it again."""


class DocumentPool:
    """Worker processes that read a folder's files (:func:`monitor.documents.parse_document`)
    for the folder scans, which run in threads: :meth:`parse` blocks its thread until a worker
    is free and has answered. Started on first use, so a daemon without folders starts none."""

    def __init__(
        self,
        workers: int = 1,
        *,
        timeout: float = 10.0,
        memory_limit: int = 512 * 1024 * 1024,
    ) -> None:
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._free = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._closed = False

    def parse(self, name: str, data: bytes) -> list[Article]:
        """The articles of the file ``name`` holding ``data``, read in a worker.

        A file that is not a valid document, or needs more than ``memory_limit``, raises
        DocumentError (the file's fault, kept until it changes). One that takes longer than
        ``timeout``, or whose worker dies, raises DocumentTimeout: how long a parse takes
        depends on the machine's load, so it is tried again. A worker that cannot start, or a
        pool shut down, raises ParseError (not the file's fault either)."""
        with self._free:
            with self._lock:
                if self._closed:
                    raise ParseError("stopped", "the document parsers are shut down")
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self.memory_limit)
            with self._lock:
                closed = self._closed  # close() ran while the worker started: it never saw it
                if not closed:
                    self._busy.add(worker)
            if closed:
                worker.kill()
                raise ParseError("stopped", "the document parsers are shut down")
            keep = False
            try:
                kind, value = worker.call(("document", data, name, None), self.timeout)
            except TimeoutError:
                raise DocumentTimeout(f"reading took longer than {self.timeout:g} s") from None
            except (EOFError, OSError):
                if self._closed:  # killed by close(): the daemon stops, the file is not at fault
                    raise ParseError("stopped", "the document parsers are shut down") from None
                raise DocumentTimeout(
                    "the parser process died (over its memory limit, or killed)"
                ) from None
            else:
                keep = kind != "memory"
            finally:
                with self._lock:
                    self._busy.discard(worker)
                    if keep and not self._closed:
                        self._idle.append(worker)
                        worker = None
                if worker is not None:
                    worker.kill()
        if kind == "ok":
            articles: list[Article] = value
            return articles
        if kind == "memory":
            raise DocumentError(f"reading needed more than {self.memory_limit:,} bytes of memory")
        raise DocumentError(value)

    def close(self) -> None:
        """Stop every worker; a parse in flight fails with ParseError("stopped")."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle = []
        for worker in workers:
            worker.kill()
