"""Hot reload of sources: feeds and folders added, changed or removed in the config (or its OPML
file) are polled, or no longer, by the running daemon, without a restart; an invalid source
edit keeps the running sources and shows its problem at its file and line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor import app as app_module
from monitor.app import App, Daemon
from tests.conftest import folder_config, free_port, polled, running
from tests.sources.conftest import FeedServer, item, rss, serving, states
from tests.test_reload import matched, publish

WaitUntil = Callable[..., Awaitable[None]]

RULE = "rules:\n  - id: quokka\n    name: Quokka watch\n    keywords: [quokka]\n"
FETCHING = "fetching: {timeout: 3s, parse_timeout: 5s, parsers: 1, min_interval: 1s}\n"


@pytest.fixture(autouse=True)
def _fast_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Due feeds are selected every 0.2 s, so a feed polled every second is polled on time."""
    monkeypatch.setattr(app_module, "DISPATCH_EVERY", 0.2)


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    """Three feeds on 127.0.0.1, each with one entry of its own about a quokka."""
    server = FeedServer()
    for name in ("a", "b", "c"):
        text = f"A quokka was seen near the {name} station on Sunday."
        server.documents[f"/{name}.xml"] = rss(name, [item(ord(name), text, guid=f"{name}-1")])
    async with serving(server):
        yield server


def feed_line(server: FeedServer, source_id: str, path: str, more: str = "") -> str:
    return (
        f"  - {{id: {source_id}, type: feed, url: '{server.url(path)}', interval: 1s, "
        f"allow_private: true{more}}}\n"
    )


def write_project(tmp_path: Path, channel_url: str, sources: str = "", extra: str = "") -> Path:
    """A config reading the folder ``inbox`` (and ``sources``) with one rule and one channel."""
    base = tmp_path.resolve()
    for folder in ("inbox", "annex", "rules"):
        (base / folder).mkdir()
    (base / "rules" / "watch.yaml").write_text(RULE, encoding="utf-8")
    config = base / "monitor.yaml"
    config.write_text(folder_config(channel_url, sources=sources, extra=FETCHING + extra))
    return config


def alerted(sink: Any, text: str) -> bool:
    return any(text in str(request["json"]) for request in sink.requests)


async def test_added_feed_and_folder_are_polled_matched_and_alerted_without_restart(
    tmp_path: Path, feeds: FeedServer, sink: Any, wait_until: WaitUntil
) -> None:
    """A feed and a folder added to the config of a daemon that had no feed are polled by the
    same running daemon, their articles matched and alerted, and its WebSub callback answers."""
    http = f"http: {{listen: '127.0.0.1:{free_port()}'}}\n"
    config = write_project(tmp_path, f"json://{sink.url}/alerts", extra=http)
    original = config.read_text(encoding="utf-8")
    async with running(config, wait_until) as daemon:
        assert daemon.feeds is None
        assert daemon.web is not None
        callback = f"http://127.0.0.1:{daemon.web.port}/websub/a"
        async with aiohttp.ClientSession() as client, client.post(callback, data=b"") as answer:
            assert answer.status == 404  # no feed: nothing to push to

        publish(config.parent / "annex", "early", "a quokka in the annex before it was read")
        more = feed_line(feeds, "a", "/a.xml") + (
            "  - {id: annex, type: folder, path: annex, interval: 1h}\n"
        )
        config.write_text(original.replace("channels:", more + "channels:"), encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.reload_status.restart_needed == ()
        assert daemon.feeds is not None
        assert [source.id for source in daemon.sources] == ["inbox", "annex"]
        # Both folders, the one from the start and the one the reload added, read their files
        # in the daemon's parser processes.
        assert all(source.parsers is daemon.documents for source in daemon.sources)

        await wait_until(lambda: alerted(sink, "Story 97"), timeout=15)
        await wait_until(lambda: alerted(sink, "Report early"), timeout=15)
        publish(config.parent / "annex", "late", "a quokka in the annex after the reload")
        await wait_until(lambda: alerted(sink, "Report late"), timeout=15)
        assert matched(daemon)["late.txt"] == {"quokka"}
        async with aiohttp.ClientSession() as client, client.post(callback, data=b"") as answer:
            assert answer.status == 202  # the callback now reaches the feed


async def test_removed_and_changed_feeds_are_not_polled_again(
    tmp_path: Path, feeds: FeedServer, sink: Any, wait_until: WaitUntil
) -> None:
    """After a reload that removes feed ``a`` and moves feed ``b`` to another URL, neither old
    URL is requested again while ``b``'s new one is polled twice; ``a``'s state is retired."""
    sources = feed_line(feeds, "a", "/a.xml") + feed_line(feeds, "b", "/b.xml")
    config = write_project(tmp_path, f"json://{sink.url}/alerts", sources=sources)
    async with running(config, wait_until) as daemon:
        await wait_until(lambda: feeds.hits.get("/a.xml", 0) >= 2, timeout=15)
        await wait_until(lambda: feeds.hits.get("/b.xml", 0) >= 2, timeout=15)
        moved = feed_line(feeds, "b", "/c.xml", ", tags: [moved]")
        config.write_text(
            config.read_text(encoding="utf-8").replace(sources, moved), encoding="utf-8"
        )
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.reload_status.restart_needed == ()
        running_feeds = daemon.feeds
        assert running_feeds is not None
        assert list(running_feeds.feeds) == ["b"]
        # A poll in flight when the reload was applied may finish; none starts after it.
        await wait_until(lambda: not running_feeds.in_flight, timeout=15)
        before = dict(feeds.hits)
        await wait_until(lambda: feeds.hits.get("/c.xml", 0) >= 2, timeout=15)
        assert feeds.hits.get("/a.xml") == before.get("/a.xml")
        assert feeds.hits.get("/b.xml") == before.get("/b.xml")
        rows = states(daemon.db)
        assert rows["a"].next_check_at is None
        assert rows["b"].url == feeds.url("/c.xml")
        await wait_until(lambda: alerted(sink, "Story 99"), timeout=15)


async def test_feeds_of_the_opml_file_follow_its_edits(
    tmp_path: Path, feeds: FeedServer, sink: Any, wait_until: WaitUntil
) -> None:
    """A feed added to the OPML file the config names is polled, and its articles alerted,
    without a restart."""
    opml = tmp_path / "feeds.opml"

    def write_opml(*paths: str) -> None:
        outlines = "".join(
            f'<outline text="{path}" type="rss" xmlUrl="{feeds.url(path)}"/>' for path in paths
        )
        opml.write_text(
            f'<?xml version="1.0"?><opml version="2.0"><head/><body>{outlines}</body></opml>',
            encoding="utf-8",
        )

    write_opml("/a.xml")
    extra = "feeds_opml: feeds.opml\nfetching: {allow_private: true, parsers: 1}\n"
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    config.write_text(config.read_text(encoding="utf-8").replace(FETCHING, extra), encoding="utf-8")
    async with running(config, wait_until) as daemon:
        await wait_until(lambda: alerted(sink, "Story 97"), timeout=15)
        write_opml("/a.xml", "/c.xml")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.feeds is not None
        assert len(daemon.feeds) == 2
        await wait_until(lambda: alerted(sink, "Story 99"), timeout=15)


async def test_removed_folder_is_no_longer_scanned_or_watched(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """A folder removed from the config loses its scan job and its watcher; the folder that
    stays goes on reading new files."""
    annex = "  - {id: annex, type: folder, path: annex, interval: 1h}\n"
    config = write_project(tmp_path, f"json://{sink.url}/alerts", sources=annex)
    async with running(config, wait_until) as daemon:
        scheduler = daemon._scheduler
        assert scheduler is not None
        assert scheduler.get_job("source:annex") is not None
        watcher = daemon._watchers["annex"][1]
        config.write_text(config.read_text(encoding="utf-8").replace(annex, ""))
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert scheduler.get_job("source:annex") is None
        await wait_until(watcher.done, timeout=15)
        assert watcher.exception() is None
        assert [source.id for source in daemon.sources] == ["inbox"]
        publish(config.parent / "inbox", "after", "a quokka in the inbox")
        await wait_until(lambda: alerted(sink, "Report after"), timeout=15)


INVALID_SOURCES = {
    "duplicate-id": ("  - {id: inbox, type: folder, path: annex}\n", "duplicate source id"),
    "bad-scheme": (
        "  - {id: ftp, type: feed, url: 'ftp://127.0.0.1/feed.xml'}\n",
        "http:// or https://",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_SOURCES))
async def test_invalid_source_edit_keeps_the_running_sources(
    tmp_path: Path,
    feeds: FeedServer,
    sink: Any,
    wait_until: WaitUntil,
    *,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    """An invalid source in the config is rejected at its file and line, in the status and the
    log, and the running feed goes on being polled, alone."""
    sources = feed_line(feeds, "a", "/a.xml")
    config = write_project(tmp_path, f"json://{sink.url}/alerts", sources=sources)
    bad, message = INVALID_SOURCES[case]
    async with running(config, wait_until) as daemon:
        caplog.set_level(logging.ERROR, logger="monitor.reload")
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace(sources, sources + bad), encoding="utf-8")
        line = text.splitlines().index(sources.rstrip("\n")) + 2
        await wait_until(lambda: daemon.reload_status.failures == 1, timeout=15)
        status = daemon.reload_status
        assert not status.ok
        assert str(status.problems[0]).startswith(f"{config}:{line}: ")
        assert message in status.problems[0].message
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert [e for e in errors if f"{config}:{line}:" in e], errors
        assert daemon.feeds is not None
        assert list(daemon.feeds.feeds) == ["a"]
        assert [source.id for source in daemon.sources] == ["inbox"]
        hits = feeds.hits.get("/a.xml", 0)
        await wait_until(lambda: feeds.hits.get("/a.xml", 0) >= hits + 2, timeout=15)


async def test_database_change_needs_a_restart_while_sources_apply(
    tmp_path: Path, sink: Any, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that changes the database and the number of parser processes lists both as
    needing a restart and logs it, and applies the new folder it also adds."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    async with running(config, wait_until) as daemon:
        caplog.set_level(logging.WARNING, logger="monitor.reload")
        annex = "  - {id: annex, type: folder, path: annex, interval: 1h}\n"
        text = config.read_text(encoding="utf-8")
        edited = (
            text.replace("data/monitor.db", "data/other.db")
            .replace("parsers: 1", "parsers: 2")
            .replace("channels:", annex + "channels:")
        )
        config.write_text(edited, encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.reload_status.restart_needed == ("database", "fetching.parsers")
        assert daemon.app.settings.fetching.parsers == 1
        assert daemon.app.settings.source_ids() == ["inbox", "annex"]
        await wait_until(lambda: polled(daemon.db, "annex"), timeout=15)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("database, fetching.parsers" in w and "restart" in w for w in warnings)


async def test_feed_removed_between_its_selection_and_its_poll_is_released_unpolled(
    tmp_path: Path, feeds: FeedServer
) -> None:
    """A feed selected as due, then removed by a reload before its poll starts, is not fetched;
    its claim is released and its state left retired."""
    sources = feed_line(feeds, "a", "/a.xml") + feed_line(feeds, "b", "/b.xml")
    config = write_project(tmp_path, "console://", sources=sources)
    daemon = Daemon(App.load(config))
    assert daemon.feeds is not None
    running_feeds = daemon.feeds
    try:
        await asyncio.to_thread(daemon.db.upgrade)
        await asyncio.to_thread(running_feeds.sync)
        selected = await asyncio.to_thread(running_feeds.due, 10)
        loaded = {state[0].source_id: state for state in selected}
        assert sorted(loaded) == ["a", "b"]
        running_feeds.in_flight.update(loaded)  # as the dispatcher marks them
        kept = [running_feeds.feeds["b"]]
        await asyncio.to_thread(running_feeds.sync, kept)
        running_feeds.reconfigure(kept, running_feeds.fetching, public_url=None)

        result = await running_feeds.poll("a", loaded["a"])
        assert (result.new, result.match_ids) == (0, [])
        assert "a" not in running_feeds.in_flight
        assert "/a.xml" not in feeds.hits
        row = states(daemon.db)["a"]
        assert (row.next_check_at, row.claimed_by) == (None, None)
        await running_feeds.poll("b", loaded["b"])
        assert feeds.hits["/b.xml"] == 1
    finally:
        await running_feeds.close()
        daemon.db.dispose()
