"""The HTTP server inside the daemon: liveness, and the callbacks of WebSub subscriptions.

``/healthz`` answers 200 while the process runs. ``/websub/{source_id}`` is where hubs verify a
subscription (GET with a challenge, echoed when monitor asked for that topic; 404 otherwise) and
push content (POST, acknowledged with 202 at once and processed in the background; content whose
signature does not verify is ignored, as WebSub requires). Hubs cannot send our bearer token, so
those two paths do not ask for it, nor does ``/healthz``; every other path does, when a token is
configured (see :mod:`monitor.web.auth`). Given probes, the app serves ``/metrics`` and
``/readyz`` (:mod:`monitor.web.metrics`); given what to read from, the JSON API and the Atom feed
(:mod:`monitor.web.api`) and the dashboard (:mod:`monitor.web.dashboard`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from monitor.logs import register_values
from monitor.settings import HttpSettings
from monitor.sources.feed import FeedSources
from monitor.web import api, auth, dashboard, metrics
from monitor.web.reader import Reads

log = logging.getLogger(__name__)

_OPEN = ("/healthz", "/websub/")


def build_app(
    settings: HttpSettings,
    feeds: FeedSources | Callable[[], FeedSources | None] | None,
    *,
    max_body: int,
    reads: Reads | None = None,
    probes: metrics.Probes | None = None,
    token: Callable[[], str | None] | None = None,
) -> web.Application:
    """The aiohttp application; ``max_body`` caps a pushed document as it caps a fetched one.
    ``feeds`` (or a function returning them at each request: a reload may add the first feed)
    receive the WebSub callbacks. With ``probes``, ``/metrics`` and ``/readyz`` too; with
    ``reads``, the API, the feed and the dashboard. ``token`` returns the token in force at each
    request (a reload may rotate it); without it, ``settings.token`` is."""
    current: Callable[[], FeedSources | None] = feeds if callable(feeds) else lambda: feeds
    if settings.token:
        register_values([settings.token])  # never in a log line
    middlewares = [auth.middleware(token or settings.token, open_paths=_OPEN)]
    if reads is not None:
        middlewares += [api.errors, dashboard.errors]
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    app.on_response_prepare.append(auth.security_headers)
    tasks: set[asyncio.Task[bool]] = set()
    app[_TASKS] = tasks

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def verify(request: web.Request) -> web.Response:
        source_id = request.match_info["source_id"]
        query = request.query
        mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
        feeds = current()
        if feeds is None or not topic:
            raise web.HTTPNotFound
        agreed = await asyncio.to_thread(
            feeds.verify_intent, source_id, mode, topic, query.get("hub.lease_seconds")
        )
        if not agreed:
            raise web.HTTPNotFound
        return web.Response(text=query.get("hub.challenge", ""))

    async def receive(request: web.Request) -> web.Response:
        feeds = current()
        if feeds is None:
            raise web.HTTPNotFound
        body = await request.read()
        task = asyncio.create_task(
            feeds.push(
                request.match_info["source_id"], body, request.headers.get("X-Hub-Signature")
            ),
            name=f"websub:{request.match_info['source_id']}",
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(status=202)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/websub/{source_id}", verify)
    app.router.add_post("/websub/{source_id}", receive)
    if probes is not None:
        metrics.add_routes(app, probes)
    if reads is not None:
        api.add_routes(app, reads)
        dashboard.add_routes(app, reads)
    return app


_TASKS: web.AppKey[set[asyncio.Task[bool]]] = web.AppKey("tasks")


class WebServer:
    """Runs the application on ``settings.listen`` until :meth:`stop`."""

    def __init__(self, app: web.Application, settings: HttpSettings) -> None:
        self.app = app
        self.settings = settings
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server  # the bound port, when listening on port 0
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("HTTP server listening on %s:%s", self.settings.host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening (requests in progress get a second), then give pushed documents still
        being ingested (tasks of their own, which the runner does not cancel) ``grace`` seconds."""
        await self._runner.cleanup()
        tasks: set[asyncio.Task[bool]] = self.app[_TASKS]
        pending = list(tasks)
        if pending:
            await asyncio.wait(pending, timeout=grace)
