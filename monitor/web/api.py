"""The JSON API under ``/api/`` and the Atom feed of matches (``/feeds/matches.xml``).

Endpoints (GET; see docs/operations.md for every field):

``/api/matches``
    Stored matches, newest first: ``rule``, ``severity``, ``source`` (each repeatable or
    comma-separated), ``since``/``until`` (ISO 8601 or a duration back from now, such as
    ``24h``), ``q`` (text in the article's title, summary or body, any case), ``limit`` (default
    50, clamped to 500), ``before`` (a match id: the page after it; each page gives its
    ``next_before``) and ``total=true`` (count every page's matches).
``/api/articles/{id}``
    One stored article with its text and every match it has, each with all its hits.
``/api/sources``
    Every configured source's health, as ``monitor sources`` shows it.
``/api/rules``
    The rules in use and the problems of the last attempt to load the rule files.
``/api/deliveries``
    The outbox, newest first, as ``monitor deliveries`` lists it: ``status``, ``channel``,
    ``rule``, ``limit``.
``/feeds/matches.xml``
    The newest matches as an Atom feed, with the filters of ``/api/matches`` (``?rule=`` for one
    rule's) but ``before`` and ``total``.

Errors are JSON too, ``{"error": "..."}``: 400 names the parameter that is wrong, 401 says the
token is missing, 404 and 405 say so. Nothing answered holds a secret (see
:mod:`monitor.web.reader`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from monitor.web import atom, auth, reader
from monitor.web.auth import Handler
from monitor.web.params import (
    FEED_PARAMETERS,
    BadParameter,
    delivery_query,
    match_query,
)
from monitor.web.reader import Reads

__all__ = ["add_routes", "errors"]


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False)
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/ and /feeds/: a bad parameter -> 400, and every HTTP error, as JSON."""
    if not request.path.startswith(auth.MACHINE):
        return await handler(request)
    try:
        return await handler(request)
    except BadParameter as exc:
        return _json({"error": str(exc), "parameter": exc.name}, 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json({"error": exc.reason.lower()}, exc.status)


def add_routes(app: web.Application, reads: Reads) -> None:
    """Add the API's and the feed's routes to ``app``, reading from ``reads``."""

    async def matches(request: web.Request) -> web.Response:
        query = match_query(request.query, reads.clock())
        page = await asyncio.to_thread(reader.matches_page, reads, query)
        body: dict[str, Any] = {
            "matches": [view.as_json() for view in page.matches],
            "limit": page.limit,
            "next_before": page.next_before,
            "next": (
                str(request.rel_url.update_query(before=page.next_before))
                if page.next_before is not None
                else None
            ),
        }
        if page.total is not None:
            body["total"] = page.total
        return _json(body)

    async def article(request: web.Request) -> web.Response:
        found = await asyncio.to_thread(reader.article_page, reads, article_id(request))
        if found is None:
            raise web.HTTPNotFound(reason="No such article")
        return _json({"article": found.as_json()})

    async def sources(_request: web.Request) -> web.Response:
        health = await asyncio.to_thread(reader.sources, reads, reads.clock())
        return _json({"sources": [item.as_json() for item in health]})

    async def rules(_request: web.Request) -> web.Response:
        status = reads.rules()
        return _json(
            {
                "rules": [reader.rule_json(rule) for rule in status.rules],
                "errors": [reader.problem_json(problem) for problem in status.errors],
                "loaded_at": (
                    status.loaded_at.isoformat(timespec="seconds") if status.loaded_at else None
                ),
            }
        )

    async def deliveries(request: web.Request) -> web.Response:
        query = delivery_query(request.query)
        views = await asyncio.to_thread(reader.deliveries, reads, query)
        return _json({"deliveries": [view.as_json() for view in views], "limit": query.limit})

    async def feed(request: web.Request) -> web.Response:
        now = reads.clock()
        query = match_query(request.query, now, known=FEED_PARAMETERS)
        page = await asyncio.to_thread(reader.matches_page, reads, query)
        # Behind a reverse proxy, request.url is the proxy's request to us: links use the
        # address people reach the daemon at when it is configured.
        base = reads.settings().public_url or str(request.url.origin())
        filters = urlencode([(k, v) for k, v in request.query.items() if k != "limit"])
        rules = ", ".join(query.filters.rules)
        body = atom.matches_feed(
            page.matches,
            feed_id="urn:monitor:feed:matches" + (f"?{filters}" if filters else ""),
            title=f"monitor: matches of {rules}" if rules else "monitor: matches",
            self_url=base + str(request.rel_url),
            page_url=f"{base}/" + (f"?{filters}" if filters else ""),
            article_url=lambda view: f"{base}/articles/{view.article_id}",
            updated=now,
        )
        return web.Response(body=body, content_type=atom.CONTENT_TYPE, charset="utf-8")

    app.router.add_get("/api/matches", matches)
    app.router.add_get("/api/articles/{id}", article)
    app.router.add_get("/api/sources", sources)
    app.router.add_get("/api/rules", rules)
    app.router.add_get("/api/deliveries", deliveries)
    app.router.add_get("/feeds/matches.xml", feed)


def article_id(request: web.Request) -> int:
    """The article id of the path (``/api/articles/{id}``, ``/articles/{id}``): 404 unless it
    is a number a stored article could have."""
    value = request.match_info["id"]
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise web.HTTPNotFound(reason="No such article")
    return int(value)
