"""The API and the dashboard served by the real daemon: its rules, its token, and no secret of
its config in any answer."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from monitor.app import App, Daemon
from monitor.errors import ConfigError
from monitor.settings import load
from monitor.store.tables import DeliveryRow, FeedRow
from tests.conftest import Sink, free_port

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_b84c25b2169af3e7.txt"

TOKEN = "daemon-token-5d4c3b2a"
FEED_PASSWORD = "feedpass-9f8e7d"
FEED_TOKEN = "feedtoken-4e5f6a"
CHANNEL_PASSWORD = "chanpass-1a2b3c"
SECRETS = (TOKEN, FEED_PASSWORD, FEED_TOKEN, CHANNEL_PASSWORD)


def write_config(tmp_path: Path, sink: Sink, port: int) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    rules = tmp_path / "rules" / "kazakhstan.yaml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("notify: [console]", "notify: [hook]"), encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    shutil.copy(SEED, tmp_path / "inbox" / SEED.name)
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: 'sqlite:///{tmp_path / 'monitor.db'}'\n"
        "rules: rules\n"
        "sources:\n"
        "  - {id: inbox, type: folder, path: inbox, interval: 1h, watch: false}\n"
        # Loopback is refused to feeds without allow_private: it fails at once, offline.
        f"  - {{id: private, type: feed, url: 'https://reader:{FEED_PASSWORD}@127.0.0.1:9/rss"
        f"?token={FEED_TOKEN}&page=1'}}\n"
        "channels:\n"
        f"  - {{id: hook, url: 'json://hookuser:{CHANNEL_PASSWORD}@{sink.url}/alerts'}}\n"
        "notify: [hook]\n"
        f"http: {{listen: '127.0.0.1:{port}', token: {TOKEN}}}\n",
        encoding="utf-8",
    )
    return config


async def test_the_daemon_serves_its_rules_and_hides_every_secret(
    tmp_path: Path, sink: Sink, wait_until: Callable[..., Awaitable[None]]
) -> None:
    """The daemon's API lists its rules with file and line, asks for its token, and no answer
    of the API, the feed or the dashboard holds the token, a feed's password or ?token=, or a
    channel's credentials, even where stored errors quote them."""
    sink.status = 500  # every send fails: the delivery keeps an error
    port = free_port()
    daemon = Daemon(App.load(write_config(tmp_path, sink, port)))
    task = asyncio.create_task(daemon.run())
    base = f"http://127.0.0.1:{port}"
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(base, headers=auth) as client:

            async def get(path: str) -> Any:
                try:
                    async with client.get(path) as answer:
                        return await answer.json() if answer.status == 200 else None
                except aiohttp.ClientConnectionError:
                    return None  # not listening yet

            async def tried() -> bool:
                body = await get("/api/deliveries?channel=hook")
                return bool(body and any(d["attempts"] for d in body["deliveries"]))

            async def failing() -> bool:
                body = await get("/api/sources")
                return bool(body) and any(
                    s["id"] == "private" and s["status"] == "failing" for s in body["sources"]
                )

            await wait_until(tried, timeout=20)
            await wait_until(failing, timeout=20)
            quote_secrets_in_errors(daemon, sink)

            rules = await get("/api/rules")
            assert rules["errors"] == []
            lethal = next(rule for rule in rules["rules"] if rule["id"] == "kz-lethal-force")
            assert lethal["file"].endswith("kazakhstan.yaml")
            assert lethal["line"] > 0
            assert lethal["channels"] == ["hook"]
            deliveries = (await get("/api/deliveries"))["deliveries"]
            assert all("***" in d["last_error"] for d in deliveries)
            sources = {s["id"]: s for s in (await get("/api/sources"))["sources"]}
            assert (
                sources["private"]["location"]
                == "https://reader:***@127.0.0.1:9/rss?token=***&page=1"
            )
            assert "***" in sources["private"]["error"]
            article = (await get("/api/matches"))["matches"][0]["article"]
            await no_secret_anywhere(client, article)
        async with aiohttp.ClientSession(base) as anonymous:
            for path, status in (("/api/matches", 401), ("/", 401), ("/healthz", 200)):
                async with anonymous.get(path) as answer:
                    assert answer.status == status, path
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=15)
    assert TOKEN not in repr(daemon.app.settings)


def quote_secrets_in_errors(daemon: Daemon, sink: Sink) -> None:
    """Stored errors that quote the secrets, as a service's or a server's message might."""
    with daemon.db.session() as session:
        session.execute(
            update(DeliveryRow).values(
                last_error=f"POST hookuser:{CHANNEL_PASSWORD}@{sink.url} refused"
            )
        )
        session.execute(
            update(FeedRow).values(
                last_error=f"GET https://reader:{FEED_PASSWORD}@127.0.0.1:9/rss failed"
            )
        )


async def no_secret_anywhere(client: aiohttp.ClientSession, article: int) -> None:
    """Every page and endpoint answers without any of :data:`SECRETS`."""
    paths = [
        "/api/matches",
        f"/api/articles/{article}",
        "/api/rules",
        "/api/sources",
        "/api/deliveries",
        "/feeds/matches.xml",
        "/",
        f"/articles/{article}",
        "/sources",
        "/deliveries",
        "/rules",
        "/metrics",
        "/readyz",
    ]
    for path in paths:
        async with client.get(path) as answer:
            assert answer.status == 200, path
            text = await answer.text()
        for secret in SECRETS:
            assert secret not in text, (path, secret)


def test_listening_beyond_loopback_without_a_token_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    """http.listen on a non-loopback address without http.token is a config error at the
    listen line; with a token, or on loopback, it loads."""
    config = tmp_path / "monitor.yaml"
    config.write_text("rules: rules\nhttp:\n  listen: '0.0.0.0:8080'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load(config)
    (problem,) = refused.value.problems
    assert (problem.line, problem.message) == (3, "listening beyond loopback requires http.token")
    config.write_text("http: {listen: '[::1]:8080'}\n", encoding="utf-8")
    assert load(config).http is not None
    config.write_text("http: {listen: '192.0.2.7:8080', token: s3cr3t-t0ken}\n", encoding="utf-8")
    loaded = load(config)
    assert loaded.http is not None
    assert "s3cr3t-t0ken" not in repr(loaded)
