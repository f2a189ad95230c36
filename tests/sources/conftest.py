"""A real aiohttp server on 127.0.0.1 that serves feeds, and every fault a feed server can have."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import brotli
import pytest
from aiohttp import web
from sqlmodel import select

from monitor.store.db import Database
from monitor.store.tables import FeedRow
from tests.conftest import listening

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rss(title: str, items: list[dict[str, str]], *, extra: str = "") -> bytes:
    """An RSS 2.0 document with ``items`` (keys: title, description, guid, link, pubDate)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{title}</title><link>https://example.org/</link><description>d</description>",
        extra,
    ]
    for item in items:
        parts.append("<item>")
        for key in ("title", "description", "guid", "link", "pubDate"):
            if key in item:
                parts.append(f"<{key}>{item[key]}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def item(number: int, text: str = "Markets were calm.", **more: str) -> dict[str, str]:
    # Recent (a few days old), so a feed of these items is not stale.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    when = start + timedelta(hours=number)
    return {
        "title": f"Story {number}",
        "description": text,
        "guid": f"story-{number}",
        "link": f"https://example.org/story/{number}",
        "pubDate": format_datetime(when, usegmt=True),
        **more,
    }


@dataclass
class FeedServer:
    """Serves ``documents`` (path -> bytes) with ETags and 304s; ``routes`` (path -> handler)
    override a path with any behaviour. ``hits`` counts requests per path; ``headers`` keeps the
    request headers of the last request per path."""

    base: str = ""
    documents: dict[str, bytes] = field(default_factory=dict)
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    statuses: list[tuple[str, int]] = field(default_factory=list)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        self.headers[path] = dict(request.headers)
        if path in self.routes:
            response = await self.routes[path](request)
        elif path in self.documents:
            response = serve(request, self.documents[path])
        else:
            response = web.Response(status=404, text="not found")
        self.statuses.append((path, response.status))
        return response


def serve(
    request: web.Request, body: bytes, content_type: str = "application/rss+xml"
) -> web.Response:
    """``body`` with an ETag, answering 304 to a matching If-None-Match, gzip when accepted."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Content-Type": content_type}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    return web.Response(body=body, headers=headers)


def encoded(body: bytes, encoding: str) -> web.Response:
    data = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
    }[encoding](body)
    return web.Response(
        body=data, headers={"Content-Encoding": encoding, "Content-Type": "application/rss+xml"}
    )


async def endless(
    request: web.Request, *, chunk: bytes = b"<!-- padding -->" * 4096
) -> web.StreamResponse:
    """A body that never ends (a 1 GB or infinite response), streamed."""
    response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
    await response.prepare(request)
    try:
        for _ in range(1 << 20):
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def trickle(request: web.Request) -> web.StreamResponse:
    """One byte a second."""
    response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
    await response.prepare(request)
    try:
        for byte in rss("slow", [item(1)]):
            await response.write(bytes([byte]))
            await asyncio.sleep(1)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


def gzip_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    """``size`` bytes of zeros, gzipped to a few hundred kilobytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + compressor.flush()


def redirect(target: str, status: int = 302) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": target})

    return handler


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=code, headers=headers or {}, body=body)

    return handler


@asynccontextmanager
async def serving(server: FeedServer) -> AsyncIterator[FeedServer]:
    """``server`` listening on a free port of 127.0.0.1 (its ``base`` set) until the end."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    async with listening(app, shutdown_timeout=0.5) as port:
        server.base = f"http://127.0.0.1:{port}"
        yield server


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with serving(FeedServer()) as server:
        yield server


def states(db: Database) -> dict[str, FeedRow]:
    """Every feed's stored state, by source id."""
    with db.session() as session:
        rows = session.exec(select(FeedRow)).all()
        session.expunge_all()
    return {row.source_id: row for row in rows}
