"""The web app on a real server on 127.0.0.1, over a real database seeded through the pipeline.

``site`` serves the API, the feed and the dashboard (with a bearer token) over ``db`` (a real
SQLite file and the real PostgreSQL); :data:`SEEDED` says what it holds: matches of three rules
from two sources, made at three different times, one with a ``<script>`` title, one with HTML in
its text, one in Cyrillic capitals and one with a literal ``%``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.errors import Problem
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article, Severity
from monitor.pipeline import CompiledRules, Pipeline
from monitor.settings import FolderSourceSettings, HttpSettings, Settings
from monitor.store.db import Database
from monitor.web.reader import Reads, RulesStatus
from monitor.web.server import build_app

TOKEN = "t0ken-for-tests-7c1e"
NOW = datetime.now(UTC).replace(microsecond=0)

RULES = (
    Rule(
        id="riot",
        name="Riots",
        severity=Severity.CRITICAL,
        keywords=("riot",),
        file="rules/unrest.yaml",
        line=3,
    ),
    Rule(id="protest", name="Protests", severity=Severity.HIGH, keywords=("протест", "protest")),
    Rule(id="calm", name="Calm", severity=Severity.LOW, keywords=("calm",), notify=("mail",)),
)
SCRIPT_TITLE = "<script>alert(1)</script> Riot in the capital"
HTML_BODY = "Police said a <b>riot</b> broke out near the square on Friday."


def article(key: str, title: str, body: str = "", source: str = "wire", **more: Any) -> Article:
    return Article(title=title, body=body, source_id=source, key=key, location=key, **more)


@dataclass
class Batch:
    """Articles ingested together, ``age`` before :data:`NOW`."""

    age: timedelta
    source: str
    articles: list[Article] = field(default_factory=list)


SEEDED = (
    Batch(
        timedelta(days=3),
        "desk",
        [
            article("old-calm", "Markets calm", "Trading was calm all week.", source="desk"),
            article("old-riot", "Riot police deployed", "No incidents.", source="desk"),
        ],
    ),
    Batch(
        timedelta(hours=2),
        "wire",
        [
            article("script", SCRIPT_TITLE, HTML_BODY, url="https://example.org/riot?a=1&b=2"),
            article("cyrillic", "ПРОТЕСТ у акимата", "Люди вышли на протест утром."),
            article("percent", "Prices up", "Prices rose 50% after the protest ended."),
        ],
    ),
    Batch(
        timedelta(minutes=10),
        "wire",
        [
            article("calm-again", "Calm returns", "The city was calm; a riot was feared."),
        ],
    ),
)
"""Matches: old-calm (calm), old-riot (riot), script (riot), cyrillic (protest), percent
(protest), calm-again (calm and riot): seven."""


def seed(db: Database, batches: tuple[Batch, ...] = SEEDED) -> None:
    """Ingest ``batches`` through the real pipeline, each at its own time."""
    pipeline = Pipeline(
        db, CompiledRules.build(RuleSet(rules=RULES)), default_channels=("console",)
    )
    for batch in batches:
        pipeline.clock = lambda batch=batch: NOW - batch.age
        pipeline.ingest(batch.source, batch.articles)


def settings() -> Settings:
    return Settings(
        sources=(
            FolderSourceSettings(id="wire", type="folder", path=Path("wire")),
            FolderSourceSettings(id="desk", type="folder", path=Path("desk")),
        ),
    )


@dataclass
class Site:
    """The app served on 127.0.0.1: ``get(path)`` asks with the token unless ``token=None``."""

    url: str
    client: aiohttp.ClientSession
    db: Database
    rules: RulesStatus

    async def get(self, path: str, token: str | None = TOKEN) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await self.client.get(self.url + path, headers=headers, allow_redirects=False)
        await response.read()
        return response

    async def json(self, path: str) -> Any:
        response = await self.get(path)
        assert response.status == 200, await response.text()
        return await response.json()


LOAD_ERRORS = (Problem("rules/new.yaml", 7, "unknown actor 'nobody'"),)


@asynccontextmanager
async def serving(db: Database, token: str | None = TOKEN) -> AsyncIterator[Site]:
    """``db`` served on a real server on 127.0.0.1 (with :data:`RULES` and
    :data:`LOAD_ERRORS`), and a client session for it."""
    status = RulesStatus(RULES, LOAD_ERRORS, NOW)
    config = settings()
    app = build_app(
        HttpSettings(listen="127.0.0.1:8080", token=token),
        None,
        max_body=1 << 20,
        reads=Reads(db, lambda: config, lambda: status),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as client:
            yield Site(f"http://127.0.0.1:{server.port}", client, db, status)
    finally:
        await server.close()


@pytest.fixture
async def site(db: Database) -> AsyncIterator[Site]:
    """The seeded database served with the token :data:`TOKEN` on a real server."""
    seed(db)
    async with serving(db) as served:
        yield served
