"""Shared fixtures: databases (a real SQLite file and the real PostgreSQL), config folders."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from monitor.app import App, Daemon
from monitor.logs import remove_handler
from monitor.store.db import Database
from monitor.store.tables import SourceRow

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 (any failure means "not available")
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL; skipped locally when the server is down, a failure in CI."""
    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(f"PostgreSQL not available: {reason}")
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A database upgraded to head on each backend of ``db_url``, disposed afterwards."""
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def postgres(postgres_schema_url: str) -> Iterator[Database]:
    """A database upgraded to head in a fresh PostgreSQL schema, disposed afterwards."""
    database = Database(postgres_schema_url)
    database.upgrade()
    yield database
    database.dispose()


def folder_config(
    channel_url: str, *, channel: str = "desk", sources: str = "", extra: str = ""
) -> str:
    """The config of a daemon on ``data/monitor.db`` that reads the folder ``inbox`` (and
    ``sources``, more source lines) with the rules of ``rules/`` and alerts one channel."""
    return (
        "database: sqlite:///data/monitor.db\n"
        "rules: rules\n"
        "sources:\n"
        "  - {id: inbox, type: folder, path: inbox, interval: 1h}\n"
        f"{sources}"
        "channels:\n"
        f"  - {{id: {channel}, url: '{channel_url}'}}\n"
        f"notify: [{channel}]\n"
        f"{extra}"
    )


def polled(db: Database, source_id: str = "inbox") -> bool:
    """True once a daemon on ``db`` has scanned the folder ``source_id`` (False while its
    schema does not exist yet)."""
    try:
        with db.reading() as session:
            row = session.get(SourceRow, source_id)
            return row is not None and row.last_polled_at is not None
    except OperationalError:
        return False


@asynccontextmanager
async def listening(app: web.Application, **options: Any) -> AsyncIterator[int]:
    """``app`` served on a free port of 127.0.0.1 (the port yielded) until the end;
    ``options`` go to its AppRunner."""
    runner = web.AppRunner(app, **options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(
    config: Path, wait_until: Callable[..., Awaitable[None]]
) -> AsyncIterator[Daemon]:
    """The daemon on ``config``, running in this event loop, once it has scanned the folder
    ``inbox`` and made its first reload check; it must still be running, the same daemon, at
    the end, and stop cleanly."""
    daemon = Daemon(App.load(config))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: polled(daemon.db) and daemon.reloader.checks >= 1, timeout=15)
        yield daemon
        assert not task.done(), "the daemon stopped"
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(task, timeout=15) == 0


async def start_daemon(config: Path, log: Path) -> asyncio.subprocess.Process:
    """``python -m monitor --config CONFIG run`` on the code under test (not an installed copy),
    in the config's folder, its output appended to ``log``, no proxy in the way of loopback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(config),
            "run",
            cwd=config.parent,
            env=env,
            stdout=sink,
            stderr=sink,
        )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the bundled config, rules and seeds in a temporary folder."""
    for name in ("config", "rules", "seeds"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


Condition = Callable[[], object]


async def _wait_until(condition: Condition, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``condition`` (a function, or a coroutine function) until it is truthy; fail with
    its last value after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(condition, timeout)``: a deadline, never a bare sleep."""
    return _wait_until


@dataclass
class Sink:
    """A local HTTP server standing in for a notification service; records every request."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """An aiohttp server on 127.0.0.1 that accepts any POST and records its path and JSON body."""
    recorder = Sink(url="")

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        recorder.requests.append({"path": request.path, "json": payload, "body": body})
        return web.json_response({"ok": recorder.status == 200}, status=recorder.status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with listening(app) as port:
        recorder.url = f"127.0.0.1:{port}"
        yield recorder


@pytest.fixture(autouse=True)
def _log_handler_removed() -> Iterator[None]:
    """A command run in-process installs monitor's log handler on the stream pytest captures for
    that test; it is removed afterwards, so that a later record (a server thread's) is not
    written to a closed stream. The root level is restored too."""
    level = logging.getLogger().level
    yield
    remove_handler()
    logging.getLogger().setLevel(level)
