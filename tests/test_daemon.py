"""The daemon end to end: folder -> rules -> SQLite -> a real HTTP channel, in one process."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from monitor.app import App, Daemon
from monitor.store.tables import DeliveryRow
from tests.conftest import folder_config, polled

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_b84c25b2169af3e7.txt"
WaitUntil = Callable[..., Awaitable[None]]


def write_config(tmp_path: Path, channel_url: str) -> Path:
    (tmp_path / "inbox").mkdir()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        folder_config(channel_url),
        encoding="utf-8",
    )
    # The shipped rules send kz-lethal-force to the console; route everything to the sink here.
    rules = tmp_path / "rules" / "kazakhstan.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace("notify: [console]", "notify: [desk]")
    )
    return config


def alerts_for(sink: Any, rule_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sink.requests
        if r["json"] and rule_id in r["json"].get("message", "") + r["json"].get("title", "")
    ]


def all_sent(daemon: Daemon) -> bool:
    """True once every stored delivery has been sent."""
    with daemon.db.session() as session:
        return all(d.status == "sent" for d in session.exec(select(DeliveryRow)).all())


async def test_dropped_file_is_alerted_within_two_seconds_and_not_again_after_restart(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """A file dropped into a watched folder alerts within 2 s; a restart alerts nothing again."""
    config = write_config(tmp_path, f"json://{sink.url}/alerts")
    daemon = Daemon(App.load(config))
    running = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: polled(daemon.db), timeout=15)
        # Prove the watcher is live with a first file, then time the second one.
        (tmp_path / "inbox" / "warmup.txt").write_text(
            "World\nTokayev tells police to shoot to kill\nAlmaty.\n", encoding="utf-8"
        )
        await wait_until(lambda: alerts_for(sink, "kz-lethal-force"), timeout=15)
        before = len(sink.requests)
        loop = asyncio.get_running_loop()
        started = loop.time()
        shutil.copy(SEED, tmp_path / "inbox" / SEED.name)
        await wait_until(lambda: len(alerts_for(sink, "kz-lethal-force")) == 2, timeout=2.0)
        elapsed = loop.time() - started
        assert elapsed < 2.0
        latest = alerts_for(sink, "kz-lethal-force")[-1]["json"]
        assert "CRITICAL" in latest["title"]
        assert (
            "Kazakhstan orders to shoot protesters without warning"
            in latest["title"] + latest["message"]
        )
        assert "shoot to kill without warning" in latest["message"]
        assert len(sink.requests) > before
        # Stopping ends delivery after the send in hand; let the file's other alerts go first.
        await wait_until(lambda: all_sent(daemon), timeout=5)
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(running, timeout=15) == 0

    delivered = len(sink.requests)
    restarted = Daemon(App.load(config))
    assert await restarted.run(once=True) == 0
    assert len(sink.requests) == delivered


async def test_failed_send_is_recorded_and_retried_later(tmp_path: Path, sink: Any) -> None:
    """A channel answering 500 keeps its deliveries pending with the reason; later they are sent."""
    config = write_config(tmp_path, f"json://{sink.url}/alerts")
    shutil.copy(SEED, tmp_path / "inbox" / SEED.name)
    sink.status = 500
    daemon = Daemon(App.load(config))
    assert await daemon.run(once=True) == 0

    def deliveries() -> list[DeliveryRow]:
        with daemon.db.session() as session:
            return list(session.exec(select(DeliveryRow)).all())

    pending = deliveries()
    count = len(pending)
    assert count > 1  # the sample matches several shipped rules
    assert all(d.status == "pending" for d in pending)
    assert all(d.last_error and "desk" in d.last_error for d in pending)
    # One attempt failed; the rest of that pass waited instead of hammering the failing target.
    assert sorted(d.attempts for d in pending) == [0] * (count - 1) + [1]
    # Make the retries due now instead of in 30 s, then run again with the service back.
    with daemon.db.session() as session:
        for row in session.exec(select(DeliveryRow)).all():
            row.next_attempt_at = row.created_at
            session.add(row)
    sink.status = 200
    assert await Daemon(App.load(config)).run(once=True) == 0
    assert all(d.status == "sent" for d in deliveries())
    assert sum(d.attempts for d in deliveries()) == count + 1


@pytest.mark.parametrize("bad", ["unknown channel", "missing variable"])
def test_bad_config_refuses_to_start_with_located_errors(tmp_path: Path, bad: str) -> None:
    """The daemon does not start on a broken config; the error names the file and line."""
    from monitor.errors import ConfigError

    config = write_config(tmp_path, "console://")
    text = config.read_text(encoding="utf-8")
    if bad == "unknown channel":
        text = text.replace("notify: [desk]", "notify: [desk, pager]")
    else:
        text = text.replace("console://", "tgram://${MONITOR_TEST_UNSET_TOKEN}/1")
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        App.load(config)
    message = str(caught.value)
    assert str(config) in message
    assert ("unknown channel 'pager'" in message) or (
        "MONITOR_TEST_UNSET_TOKEN is not set" in message
    )


async def test_watch_survives_the_folder_being_replaced(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """After the watched folder is deleted and created again, new files are still alerted."""
    config = write_config(tmp_path, f"json://{sink.url}/alerts")
    daemon = Daemon(App.load(config))
    running = asyncio.create_task(daemon.run())
    inbox = tmp_path / "inbox"
    try:
        await wait_until(lambda: polled(daemon.db), timeout=15)
        shutil.rmtree(inbox)
        inbox.mkdir()
        batch = tmp_path / "batch"
        batch.mkdir()
        shutil.copy(SEED, batch / SEED.name)
        batch.rename(inbox / "batch")  # a folder moved in arrives as one event
        await wait_until(lambda: alerts_for(sink, "kz-lethal-force"), timeout=15)
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(running, timeout=15) == 0
