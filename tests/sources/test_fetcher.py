"""The fetcher against a real local server: politeness, limits and every fault, by reason."""

from __future__ import annotations

import resource
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from monitor.sources.fetcher import (
    USER_AGENT,
    Fetcher,
    FetchError,
    FetchLimits,
    FetchTooLate,
    address_allowed,
    max_age,
    retry_after,
)
from tests.sources.conftest import (
    FeedServer,
    encoded,
    endless,
    gzip_bomb,
    item,
    redirect,
    rss,
    status,
    trickle,
)

FEED = rss("Desk", [item(1), item(2)])


async def fetch(server: FeedServer, path: str, **options: object) -> object:
    limits = options.pop("limits", FetchLimits())
    async with Fetcher(limits) as fetcher:  # type: ignore[arg-type]
        return await fetcher.get(server.url(path), allow_private=True, **options)  # type: ignore[arg-type]


async def failure(server: FeedServer, path: str, **options: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(server, path, **options)
    return caught.value


async def test_conditional_get_gets_304_with_the_stored_etag(feed_server: FeedServer) -> None:
    """The first GET returns the body and its ETag; sending the ETag back gets a 304 and no body,
    and requests name monitor in their User-Agent and accept compression."""
    feed_server.documents["/feed.xml"] = FEED
    first = await fetch(feed_server, "/feed.xml")
    assert first.status == 200
    assert first.body == FEED
    assert first.etag
    again = await fetch(feed_server, "/feed.xml", etag=first.etag)  # type: ignore[attr-defined]
    assert again.status == 304
    assert again.body == b""
    sent = feed_server.headers["/feed.xml"]
    assert sent["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("monitor/")
    assert "gzip" in sent["Accept-Encoding"]
    assert "br" in sent["Accept-Encoding"]
    assert sent["If-None-Match"] == first.etag  # type: ignore[attr-defined]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_bodies_are_decoded(feed_server: FeedServer, encoding: str) -> None:
    """gzip, deflate and brotli bodies arrive decoded."""

    async def handler(_request: web.Request) -> web.Response:
        return encoded(FEED, encoding)

    feed_server.routes["/feed.xml"] = handler
    response = await fetch(feed_server, "/feed.xml")
    assert response.body == FEED  # type: ignore[attr-defined]


async def test_gzip_bomb_stops_at_the_cap_without_inflating(feed_server: FeedServer) -> None:
    """200 MB of zeros gzipped to about 200 KB is refused at the 1 MiB cap, and the process never
    holds the inflated body."""
    bomb = gzip_bomb()

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    feed_server.routes["/bomb.xml"] = handler
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = await failure(feed_server, "/bomb.xml", limits=FetchLimits(max_body=1024 * 1024))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert error.reason == "too_large"
    assert "after decompression" in str(error)
    assert grown_kib < 50 * 1024


async def test_endless_body_is_cut_at_the_cap(feed_server: FeedServer) -> None:
    """A body with no end (a 1 GB download) is abandoned once it passes the cap."""
    feed_server.routes["/huge.xml"] = endless
    error = await failure(feed_server, "/huge.xml", limits=FetchLimits(max_body=2 * 1024 * 1024))
    assert error.reason == "too_large"


async def test_declared_length_over_the_cap_is_refused_before_reading(
    feed_server: FeedServer,
) -> None:
    """A Content-Length above the cap is refused without reading the body."""
    feed_server.routes["/big.xml"] = status(200, body=b"x" * 300_000)
    error = await failure(feed_server, "/big.xml", limits=FetchLimits(max_body=100_000))
    assert error.reason == "too_large"
    assert "300,000" in str(error)


async def test_one_byte_a_second_hits_the_total_deadline(feed_server: FeedServer) -> None:
    """A server that trickles its body is cut off at the total timeout."""
    feed_server.routes["/slow.xml"] = trickle
    error = await failure(feed_server, "/slow.xml", limits=FetchLimits(total_timeout=1.5))
    assert error.reason == "timeout"


async def test_redirects_are_followed_and_a_permanent_move_reported(
    feed_server: FeedServer,
) -> None:
    """A 301 chain reports the new URL as permanent; a 302 on the way does not."""
    feed_server.documents["/new.xml"] = FEED
    feed_server.routes["/old.xml"] = redirect("/new.xml", 301)
    feed_server.routes["/temp.xml"] = redirect("/old.xml", 302)
    moved = await fetch(feed_server, "/old.xml")
    assert moved.body == FEED  # type: ignore[attr-defined]
    assert moved.permanent_url == feed_server.url("/new.xml")  # type: ignore[attr-defined]
    temporary = await fetch(feed_server, "/temp.xml")
    assert temporary.permanent_url is None  # type: ignore[attr-defined]


async def test_redirect_loop_and_long_chains_stop(feed_server: FeedServer) -> None:
    """A loop is named as one; a chain longer than max_redirects stops at the limit."""
    feed_server.routes["/a"] = redirect("/b")
    feed_server.routes["/b"] = redirect("/a")
    for hop in range(12):
        feed_server.routes[f"/chain/{hop}"] = redirect(f"/chain/{hop + 1}")
    assert (await failure(feed_server, "/a")).reason == "redirect_loop"
    assert (await failure(feed_server, "/chain/0")).reason == "too_many_redirects"
    assert feed_server.hits["/chain/5"] == 1
    assert "/chain/6" not in feed_server.hits


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://127.0.0.1:9/", "blocked_address"),
        ("http://[::1]/", "blocked_address"),
        ("http://[::ffff:10.0.0.1]/", "blocked_address"),
        ("http://100.64.0.1/", "blocked_address"),
        ("http://0.0.0.0/", "blocked_address"),
        ("http://localhost:9/", "blocked_address"),
        # The C library resolves this to 127.0.0.1; aiohttp refuses the form before that.
        ("http://2130706433/", "bad_url"),
    ],
)
async def test_private_addresses_are_refused_on_every_hop(target: str, reason: str) -> None:
    """Loopback, link-local, private, shared and unspecified addresses are refused, as literals
    or as names that resolve to them (checked where the name is resolved)."""
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.get(target)
    assert caught.value.reason == reason


async def test_redirect_to_a_private_address_is_refused(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every redirect hop is checked like the first: a public feed cannot send the fetcher to
    the cloud metadata address. (The test server's own address is treated as public here, to
    stand in for a public host.)"""
    from monitor.sources import fetcher as module

    real = module.address_allowed
    monkeypatch.setattr(module, "address_allowed", lambda a: a == "127.0.0.1" or real(a))
    feed_server.routes["/go"] = redirect("http://169.254.169.254/latest/meta-data/")
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.get(feed_server.url("/go"), allow_private=False)
    assert caught.value.reason == "blocked_address"
    assert feed_server.hits["/go"] == 1  # the first hop was fetched; the second refused


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "ftp://example.org/feed",
        "gopher://example.org/",
        "data:text/xml,<rss/>",
        "http://127.0.0.1:8080\\@example.com/",
    ],
)
async def test_only_http_urls_are_fetched(url: str) -> None:
    """Other schemes, relative paths and backslash tricks are refused before any connection."""
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.get(url, allow_private=True)
    assert caught.value.reason == "bad_url"


async def test_gone_rate_limited_and_server_errors(feed_server: FeedServer) -> None:
    """410 is "gone"; 429 and 503 carry Retry-After in seconds (clamped to 24 h); 500 is an
    HTTP error."""
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    feed_server.routes["/gone"] = status(410)
    feed_server.routes["/busy"] = status(429, {"Retry-After": "120"})
    feed_server.routes["/down"] = status(503, {"Retry-After": later})
    feed_server.routes["/absurd"] = status(429, {"Retry-After": "99999999"})
    feed_server.routes["/broken"] = status(500)
    assert (await failure(feed_server, "/gone")).reason == "gone"
    busy = await failure(feed_server, "/busy")
    assert (busy.reason, busy.retry_after) == ("rate_limited", 120.0)
    down = await failure(feed_server, "/down")
    assert down.reason == "unavailable"
    assert 590 <= (down.retry_after or 0) <= 600
    assert (await failure(feed_server, "/absurd")).retry_after == 24 * 3600
    assert (await failure(feed_server, "/broken")).reason == "http_500"


async def test_per_host_limit_holds(feed_server: FeedServer) -> None:
    """No more than ``per_host`` requests to one host are in flight at once."""
    import asyncio

    in_flight = 0
    peak = 0

    async def handler(_request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(body=FEED)

    feed_server.routes["/feed.xml"] = handler
    async with Fetcher(FetchLimits(per_host=2)) as fetcher:
        await asyncio.gather(
            *(fetcher.get(feed_server.url("/feed.xml"), allow_private=True) for _ in range(10))
        )
    assert peak == 2


def test_header_parsing() -> None:
    """Retry-After as seconds or date, Cache-Control max-age, and the address classifier."""
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert retry_after("30", now) == 30
    assert retry_after(format_datetime(now + timedelta(hours=2), usegmt=True), now) == 7200
    assert retry_after("soon", now) is None
    assert max_age("public, max-age=600") == 600
    assert max_age("no-store") is None
    assert address_allowed("93.184.216.34")
    assert not address_allowed("10.1.2.3")
    assert not address_allowed("fe80::1")


async def test_a_busy_host_does_not_hold_the_global_slots(feed_server: FeedServer) -> None:
    """Requests queued for one host wait for that host's slot without taking a global one, so
    another host is fetched at once even while the first host holds its limit."""
    import asyncio

    release = asyncio.Event()

    async def held(_request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=FEED)

    feed_server.routes["/held.xml"] = held
    feed_server.documents["/free.xml"] = FEED
    other_host = feed_server.url("/free.xml").replace("127.0.0.1", "localhost")
    async with Fetcher(FetchLimits(concurrency=2, per_host=1)) as fetcher:
        waiting = [
            asyncio.create_task(fetcher.get(feed_server.url("/held.xml"), allow_private=True))
            for _ in range(4)
        ]
        try:
            free = await asyncio.wait_for(fetcher.get(other_host, allow_private=True), 10)
            assert free.body == FEED
        finally:
            release.set()
            await asyncio.gather(*waiting)


async def test_a_request_past_its_start_deadline_is_not_sent(feed_server: FeedServer) -> None:
    """A GET that gets its slots only after its ``start_by`` raises FetchTooLate without
    sending anything; one within it is sent."""
    import asyncio

    feed_server.documents["/feed.xml"] = FEED
    now = asyncio.get_running_loop().time()
    with pytest.raises(FetchTooLate) as caught:
        await fetch(feed_server, "/feed.xml", start_by=now - 1)
    assert caught.value.reason == "late"
    assert feed_server.hits == {}
    response = await fetch(feed_server, "/feed.xml", start_by=now + 60)
    assert response.body == FEED  # type: ignore[attr-defined]
