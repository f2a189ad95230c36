"""Fixtures for notify tests: alerts, and real servers on 127.0.0.1 standing in for the services.

- ``smtp_server``: a real aiosmtpd SMTP server (plain SMTP with AUTH PLAIN/LOGIN, no TLS).
- ``slack_server`` / ``telegram_server``: real aiohttp servers; Apprise's own Slack and Telegram
  plugins are pointed at them by patching the class attribute holding the service's base URL.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import NotifyTelegram
from sqlmodel import select

from monitor.logs import configure_logging
from monitor.models import Alert, Hit, Severity
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow, utcnow
from tests.conftest import free_port, listening

BODY = (
    "ALMATY, Jan 7 (Reuters) - President Kassym-Jomart Tokayev said on Friday he had authorised "
    "security forces to shoot to kill without warning to quell unrest, and rejected calls for "
    "talks with protesters after days of violence across Kazakhstan."
)
SMTP_USER = "user"
SMTP_PASSWORD = "secretpass123"


def _hit(text: str, term: str, field_name: str = "body", kind: str = "keyword") -> Hit:
    start = text.index(term)
    return Hit(
        term=term, field=field_name, start=start, end=start + len(term), text=term, kind=kind
    )


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    """A factory for alerts: the Kazakhstan story, hits on "shoot" and "without warning"."""

    def make(**changes: Any) -> Alert:
        alert = Alert(
            match_id=7,
            rule_id="lethal-force",
            rule_name="Orders to use lethal force against protesters",
            severity=Severity.CRITICAL,
            title="Kazakhstan orders to shoot protesters without warning",
            source_id="reuters-world",
            link="https://www.reuters.com/world/asia-pacific/kazakhstan-2022-01-07/",
            location=None,
            published=datetime(2022, 1, 7, 10, 15, tzinfo=UTC),
            matched_at=datetime(2022, 1, 7, 10, 20, tzinfo=UTC),
            hits=(_hit(BODY, "shoot"), _hit(BODY, "without warning")),
            fields={"body": BODY},
        )
        return replace(alert, **changes)

    return make


@pytest.fixture
def hit() -> Callable[..., Hit]:
    """A factory for a hit on the first occurrence of ``term`` in a text."""
    return _hit


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests made by Apprise's plugins reach 127.0.0.1 directly, whatever the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass
class SmtpServer:
    """An aiosmtpd handler recording every message; logins of ``user`` / ``password`` succeed
    while ``accept_login``."""

    port: int
    messages: list[bytes] = field(default_factory=list)
    accept_login: bool = True
    user: str = SMTP_USER
    password: str = SMTP_PASSWORD

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.accept_login
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user.encode()
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_serving(handler: Any, port: int) -> Iterator[None]:
    """A real aiosmtpd server for ``handler`` on 127.0.0.1:``port`` during the block: plain SMTP,
    login without STARTTLS (Apprise's "insecure" mode) by the handler's ``authenticate``, or
    any login when it has none."""
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=getattr(handler, "authenticate", lambda *_: AuthResult(success=True)),
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that accepts SMTP_USER/SMTP_PASSWORD over plain SMTP."""
    server = SmtpServer(port=free_port())
    with smtp_serving(server, server.port):
        yield server


# --------------------------------------------------------------------------------------------
# HTTP stand-ins


@dataclass(frozen=True)
class Reply:
    """One scripted answer of a stand-in."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"


@dataclass
class StandIn:
    """Records every request it receives and answers with ``status`` and ``body``, or with the
    next of ``script`` while it lasts."""

    status: int = 200
    body: str = "ok"
    content_type: str = "text/plain"
    requests: list[tuple[str, Any]] = field(default_factory=list)
    hang: bool = False
    """Accept the request but answer only when the fixture ends (a target that hangs)."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    script: list[Reply] = field(default_factory=list)
    """Answers to give first, in order (consumed)."""
    times: list[float] = field(default_factory=list)
    """When each request arrived (the event loop's clock), in order."""

    def answer_next(
        self,
        status: int,
        body: str = "",
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain",
    ) -> None:
        """Queue an answer for the next request no earlier answer is queued for."""
        self.script.append(Reply(status, body, headers or {}, content_type))

    async def handle(self, request: web.Request) -> web.Response:
        if self.hang:
            await self.released.wait()
        raw = await request.text()
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw
        self.requests.append((request.path, payload))
        self.times.append(asyncio.get_running_loop().time())
        if self.script:
            reply = self.script.pop(0)
            return web.Response(
                status=reply.status,
                text=reply.body,
                headers=reply.headers,
                content_type=reply.content_type,
            )
        return web.Response(status=self.status, text=self.body, content_type=self.content_type)


@pytest.fixture
async def webhook_server() -> AsyncIterator[tuple[StandIn, str]]:
    """A stand-in JSON webhook on 127.0.0.1 and its ``json://`` Apprise URL."""
    stand_in = StandIn()
    app = web.Application()
    app.router.add_post("/hook", stand_in.handle)
    async with listening(app) as port:
        try:
            yield stand_in, f"json://127.0.0.1:{port}/hook"
        finally:
            stand_in.released.set()


@pytest.fixture
async def slack_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StandIn]:
    """A stand-in for hooks.slack.com answering "ok", with Apprise's Slack plugin pointed at it."""
    stand_in = StandIn()
    app = web.Application()
    app.router.add_post("/services/{a}/{b}/{c}", stand_in.handle)
    async with listening(app) as port:
        monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{port}/services")
        try:
            yield stand_in
        finally:
            stand_in.released.set()


@pytest.fixture
async def telegram_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StandIn]:
    """A stand-in for api.telegram.org, with Apprise's Telegram plugin pointed at it.

    Apprise calls only sendMessage when the URL names the chat (getUpdates is for finding the
    bot's owner when it does not), so that is the one method served.
    """
    stand_in = StandIn(
        body=json.dumps({"ok": True, "result": {"message_id": 1}}),
        content_type="application/json",
    )
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", stand_in.handle)
    async with listening(app) as port:
        monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{port}/bot")
        try:
            yield stand_in
        finally:
            stand_in.released.set()


# --------------------------------------------------------------------------------------------
# Outbox rows

OUTBOX_T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HIT = {"term": "shoot", "field": "title", "start": 8, "end": 13, "text": "shoot", "kind": "keyword"}


@dataclass
class Clock:
    """A clock that stands still until told to move."""

    now: datetime = OUTBOX_T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def insert_deliveries(
    db: Database, channel: str, count: int = 1, at: datetime | None = None
) -> list[int]:
    """One new article with ``count`` matches, each with a delivery to ``channel`` due at ``at``
    (now when None); the delivery ids in order."""
    at = at if at is not None else utcnow()
    number = uuid.uuid4().hex
    ids: list[int] = []
    with db.session() as session:
        article = ArticleRow(
            source_id="seeds",
            key=f"{number}.txt",
            content_hash=number * 2,
            title="Troops shoot protesters",
            created_at=at,
            updated_at=at,
        )
        session.add(article)
        session.flush()
        assert article.id is not None
        for rule in range(count):
            match = MatchRow(
                article_id=article.id,
                rule_id=f"rule-{rule}",
                rule_name=f"Rule {rule}",
                severity="high",
                hits=[HIT],
                created_at=at,
            )
            session.add(match)
            session.flush()
            assert match.id is not None
            delivery = DeliveryRow(
                match_id=match.id, channel=channel, next_attempt_at=at, created_at=at
            )
            session.add(delivery)
            session.flush()
            assert delivery.id is not None
            ids.append(delivery.id)
    return ids


def delivery_rows(db: Database) -> dict[int, DeliveryRow]:
    """Every delivery row, by id."""
    with db.session() as session:
        return {row.id: row for row in session.exec(select(DeliveryRow)).all() if row.id}


# --------------------------------------------------------------------------------------------
# Logs


@contextmanager
def logging_restored() -> Iterator[None]:
    """The root and apprise loggers' levels and the root's handlers as they were, afterwards."""
    root = logging.getLogger()
    library = logging.getLogger("apprise")
    saved = (root.level, list(root.handlers), library.level)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in saved[1]]:
            root.removeHandler(handler)
        root.setLevel(saved[0])
        library.setLevel(saved[2])


@pytest.fixture
def monitor_log() -> Iterator[io.StringIO]:
    """Everything our own log handler writes at DEBUG (Apprise at DEBUG too), as the daemon would.

    This is the path that must never show a secret: pytest's caplog handler has no redacting
    filter, so records of other libraries (urllib3 logs each request path at DEBUG, which for
    Slack holds the webhook tokens) are only redacted by ours.
    """
    stream = io.StringIO()
    with logging_restored():
        configure_logging("DEBUG", "text", apprise_level="DEBUG", stream=stream)
        yield stream
