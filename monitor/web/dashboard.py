"""The dashboard: server-rendered pages of what the daemon stored and how it is doing.

``/``
    Recent matches, newest first, each with its excerpt and the hits marked; filters by
    severity, rule, source and period, a search box, and a link to the next (older) page. It
    takes the parameters of ``/api/matches`` (but ``total``).
``/articles/{id}``
    One article: its text with every hit of every match marked, and each match with its hits
    and deliveries.
``/sources``, ``/deliveries``, ``/rules``
    Feed health; the delivery queue (``?status=``, ``?channel=``); the rules in use and the
    problems of the last attempt to load them.

There is no JavaScript and no build step: Jinja2 templates (``monitor/web/templates/``) with
autoescape on, so every text that comes from a feed is escaped wherever it is printed, and one
stylesheet served from the daemon itself (the Content-Security-Policy allows nothing else; see
:mod:`monitor.web.auth`). A hit is marked from its stored offsets (``<mark>``), the text around
it escaped. Links to articles are only ever http(s) URLs, opened without a referrer.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from monitor.durations import format_duration
from monitor.models import Severity
from monitor.web import api, auth, reader
from monitor.web.auth import Handler
from monitor.web.params import (
    DELIVERY_STATUSES,
    FEED_PARAMETERS,
    BadParameter,
    delivery_query,
    match_query,
)
from monitor.web.reader import Reads

__all__ = ["ICON", "STYLESHEET", "add_routes", "environment", "errors"]

STYLESHEET = "/static/dashboard.css"
ICON = "/static/favicon.svg"
_INDEX_PARAMETERS = FEED_PARAMETERS | {"before"}
_PERIODS: tuple[tuple[str, str], ...] = (
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
)
"""The period filter's choices: values of ``since``."""


def _when(value: datetime | None) -> str:
    """A time as the pages show it: ``2026-01-07 10:20 UTC``; ``-`` for none."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def _span(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "-"


def environment() -> jinja2.Environment:
    """The templates' environment: autoescape on for every template, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["span"] = _span
    return env


def _static(name: str) -> bytes:
    return resources.files("monitor.web").joinpath("static", name).read_bytes()


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On dashboard pages: a bad parameter -> a 400 page naming it; other HTTP errors as a
    page too."""
    if request.path.startswith((*auth.MACHINE, "/websub/", "/healthz", "/static/")):
        return await handler(request)
    try:
        return await handler(request)
    except BadParameter as exc:
        return _render(request, "error.html.j2", status=400, title="Bad request", message=str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _render(request, "error.html.j2", status=exc.status, title=exc.reason, message="")


_ENV: web.AppKey[jinja2.Environment] = web.AppKey("dashboard_templates")


def _render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    page = (
        request.app[_ENV]
        .get_template(name)
        .render(stylesheet=STYLESHEET, icon=ICON, path=request.path, **context)
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def add_routes(app: web.Application, reads: Reads) -> None:
    """Add the dashboard's pages and stylesheet to ``app``, reading from ``reads``."""
    app[_ENV] = environment()
    stylesheet, icon = _static("dashboard.css"), _static("favicon.svg")

    async def index(request: web.Request) -> web.Response:
        query = match_query(request.query, reads.clock(), known=_INDEX_PARAMETERS)
        page = await asyncio.to_thread(reader.matches_page, reads, query)
        since = request.query.get("since", "")
        periods = list(_PERIODS)
        if since and since not in dict(periods):
            periods.append((since, f"since {since}"))
        older = (
            str(request.rel_url.update_query(before=page.next_before))
            if page.next_before is not None
            else None
        )
        return _render(
            request,
            "matches.html.j2",
            title="Matches",
            page=page,
            filters=query.filters,
            since=since,
            periods=periods,
            severities=[s.value for s in reversed(Severity)],
            rules=sorted((rule.id, rule.name) for rule in reads.rules().rules),
            sources=reads.settings().source_ids(),
            older=older,
            newest=str(request.rel_url.without_query_params("before")) if query.before else None,
            filtered=bool(request.query),
        )

    async def article(request: web.Request) -> web.Response:
        found = await asyncio.to_thread(reader.article_page, reads, api.article_id(request))
        if found is None:
            raise web.HTTPNotFound(reason="No such article")
        return _render(request, "article.html.j2", title=found.title, article=found)

    async def sources(request: web.Request) -> web.Response:
        health = await asyncio.to_thread(reader.sources, reads, reads.clock())
        return _render(request, "sources.html.j2", title="Sources", sources=health)

    async def deliveries(request: web.Request) -> web.Response:
        query = delivery_query(request.query)
        views = await asyncio.to_thread(reader.deliveries, reads, query)
        return _render(
            request,
            "deliveries.html.j2",
            title="Deliveries",
            deliveries=views,
            query=query,
            statuses=DELIVERY_STATUSES,
            channels=reads.settings().channel_ids(),
        )

    async def rules(request: web.Request) -> web.Response:
        return _render(request, "rules.html.j2", title="Rules", loaded=reads.rules())

    def static(body: bytes, content_type: str) -> Handler:
        async def serve(_request: web.Request) -> web.Response:
            return web.Response(
                body=body, content_type=content_type, headers={"Cache-Control": "max-age=3600"}
            )

        return serve

    app.router.add_get("/", index)
    app.router.add_get("/articles/{id}", article)
    app.router.add_get("/sources", sources)
    app.router.add_get("/deliveries", deliveries)
    app.router.add_get("/rules", rules)
    app.router.add_get(STYLESHEET, static(stylesheet, "text/css"))
    app.router.add_get(ICON, static(icon, "image/svg+xml"))
