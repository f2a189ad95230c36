"""WebSub end to end: the daemon subscribes to a feed's hub, answers the hub's challenge, and
ingests signed pushes at once; unsigned or wrongly signed pushes are ignored."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from monitor.app import App, Daemon
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, SubscriptionRow
from tests.conftest import free_port
from tests.sources.conftest import FeedServer

ROOT = Path(__file__).resolve().parents[2]
WaitUntil = Callable[..., Awaitable[None]]


def atom(hub: str, self_url: str, entries: list[tuple[str, str]]) -> bytes:
    items = "".join(
        f"<entry><id>tag:example.org,2026:{guid}</id><title>{guid}</title><updated>2026-11-28T10:00:00Z</updated>"
        f"<content type='text'>{text}</content></entry>"
        for guid, text in entries
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<title>Desk</title><id>desk</id><updated>2026-11-28T10:00:00Z</updated>"
        f"<link rel='hub' href='{hub}'/><link rel='self' href='{self_url}'/>{items}</feed>"
    ).encode()


def rows(db_url: str, table: type) -> list:  # type: ignore[type-arg]
    database = Database(db_url)
    try:
        with database.session() as session:
            return list(session.exec(select(table)).all())
    except OperationalError:
        return []
    finally:
        database.dispose()


async def test_subscribe_verify_and_receive_pushes(
    feed_server: FeedServer, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """The hub gets a subscription request with a callback and a secret; the daemon echoes the
    challenge for its topic only; a push signed with the secret is stored within seconds, and
    one with a wrong signature is acknowledged but ignored."""
    requests: list[dict[str, str]] = []

    async def hub(request: web.Request) -> web.Response:
        requests.append(dict(await request.post()))  # type: ignore[arg-type]
        return web.Response(status=202)

    feed_url = feed_server.url("/feed.atom")
    feed_server.routes["/hub"] = hub
    feed_server.documents["/feed.atom"] = atom(feed_server.url("/hub"), feed_url, [("a", "Calm.")])
    port = free_port()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: '{db_url}'\nrules: rules\n"
        "channels: [{id: console, url: 'console://'}]\nnotify: [console]\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\npublic_url: 'http://127.0.0.1:{port}'\n"
        f"sources:\n  - {{id: desk, type: feed, url: '{feed_url}', allow_private: true}}\n",
        encoding="utf-8",
    )
    daemon = Daemon(App.load(config))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: requests, timeout=20)
        form = requests[0]
        assert form["hub.mode"] == "subscribe"
        assert form["hub.topic"] == feed_url
        callback = form["hub.callback"]
        assert callback == f"http://127.0.0.1:{port}/websub/desk"
        secret = form["hub.secret"]
        assert len(secret) >= 32
        async with aiohttp.ClientSession() as client:
            wrong = {
                "hub.mode": "subscribe",
                "hub.topic": "https://other.example/",
                "hub.challenge": "x",
            }
            async with client.get(callback, params=wrong) as answer:
                assert answer.status == 404
            check = {
                "hub.mode": "subscribe",
                "hub.topic": feed_url,
                "hub.challenge": "c-123",
                "hub.lease_seconds": "86400",
            }
            async with client.get(callback, params=check) as answer:
                assert answer.status == 200
                assert await answer.text() == "c-123"
            assert rows(db_url, SubscriptionRow)[0].state == "active"

            lethal = "Tokayev ordered police to shoot protesters without warning."
            pushed = atom(feed_server.url("/hub"), feed_url, [("b", lethal)])
            forged = atom(feed_server.url("/hub"), feed_url, [("c", "Forged entry.")])
            signature = "sha256=" + hmac.new(secret.encode(), pushed, hashlib.sha256).hexdigest()
            async with client.post(
                callback, data=forged, headers={"X-Hub-Signature": "sha256=00"}
            ) as answer:
                assert answer.status == 202
            async with client.post(
                callback, data=pushed, headers={"X-Hub-Signature": signature}
            ) as answer:
                assert answer.status == 202
        await wait_until(
            lambda: {r.title for r in rows(db_url, ArticleRow)} >= {"a", "b"}, timeout=10
        )
        assert "c" not in {r.title for r in rows(db_url, ArticleRow)}
        assert feed_server.hits["/feed.atom"] == 1  # the push came without polling
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=15)


def test_discovery_prefers_link_headers_and_falls_back_to_the_fetched_url() -> None:
    """Link headers win over the document; without a self link the fetched URL is the topic; a
    hub that is not http(s) is ignored."""
    from monitor.sources.fetcher import link_relations
    from monitor.sources.parsing import FeedHints
    from monitor.sources.websub import discover

    links = link_relations(
        ['<https://hub.example/>; rel="hub", </feed>; rel="self"'], "https://a.example/x"
    )
    assert links == {"hub": "https://hub.example/", "self": "https://a.example/feed"}
    hints = FeedHints(hub="https://doc-hub.example/", self_url=None)
    assert discover(hints, links, "https://a.example/x") == (
        "https://hub.example/",
        "https://a.example/feed",
    )
    assert discover(hints, {}, "https://a.example/x") == (
        "https://doc-hub.example/",
        "https://a.example/x",
    )
    assert discover(FeedHints(hub="javascript:alert(1)"), {}, "https://a.example/x") is None


def test_signatures_and_renewal_decisions() -> None:
    """Each WebSub HMAC method verifies; a tampered body or unknown method does not; a lease is
    renewed within two days of its end, and a request the hub never verified is made again."""
    from datetime import UTC, datetime, timedelta

    from monitor.sources.websub import needs_request, signature_valid

    body = b"<feed/>"
    for method in ("sha1", "sha256", "sha384", "sha512"):
        digest = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
        assert signature_valid("s3cret", body, f"{method}={digest}")
        assert not signature_valid("s3cret", body + b" ", f"{method}={digest}")
    assert not signature_valid("s3cret", body, "md5=abc")
    assert not signature_valid("s3cret", body, None)
    now = datetime(2026, 11, 29, tzinfo=UTC)

    def row(state: str, **when: datetime) -> SubscriptionRow:
        return SubscriptionRow(source_id="f", hub="h", topic="t", secret="s", state=state, **when)

    assert needs_request(None, "h", "t", now)
    assert needs_request(row("active", lease_until=now + timedelta(days=5)), "other", "t", now)
    assert not needs_request(row("active", lease_until=now + timedelta(days=5)), "h", "t", now)
    assert needs_request(row("active", lease_until=now + timedelta(hours=40)), "h", "t", now)
    assert not needs_request(
        row("requested", requested_at=now - timedelta(minutes=5)), "h", "t", now
    )
    assert needs_request(row("requested", requested_at=now - timedelta(hours=2)), "h", "t", now)
    assert not needs_request(row("denied"), "h", "t", now)


def test_http_settings_refuse_an_open_listener_without_a_token(tmp_path: Path) -> None:
    """Listening beyond loopback needs a token; public_url needs the HTTP server."""
    import pytest

    from monitor.errors import ConfigError
    from monitor.settings import load

    config = tmp_path / "monitor.yaml"
    config.write_text(
        "http: {listen: '0.0.0.0:8080'}\npublic_url: https://x.example\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"requires http\.token"):
        load(config)
    config.write_text("public_url: https://x.example\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs the HTTP server"):
        load(config)
    config.write_text("http: {listen: '0.0.0.0:8080', token: t0ken}\n", encoding="utf-8")
    assert load(config).http is not None
