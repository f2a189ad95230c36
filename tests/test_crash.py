"""Crash safety: the daemon killed with SIGKILL again and again loses no match, and every alert it
sends twice is counted.

The daemon runs as a subprocess (``python -m monitor --config ... run``) on a SQLite file, reading
a folder of documents and delivering to a JSON webhook stand-in (an aiohttp server in this test
that records every POST). Before each run two new documents arrive; each run is killed with
SIGKILL at a random moment: a random time after it starts (start-up, ingest, matching, delivery),
or just as the stand-in receives a POST (the send in flight), or a few milliseconds after the
stand-in has answered (between the service's 200 and the row marked sent). The next run starts as
soon as the last one is dead. A last run, stopped with SIGTERM, delivers what is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.exc import OperationalError
from sqlmodel import func, select

from monitor.store import outbox as store
from monitor.store.db import Database
from monitor.store.tables import DeliveryRow, MatchRow
from tests.conftest import folder_config, listening, start_daemon

ROOT = Path(__file__).resolve().parent.parent
KILLS = 52
WEBHOOK_PASSWORD = "crashsecret2718"
MARKER = re.compile(r"crash-\d{3}-[ab]")
WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.slow


@dataclass
class Webhook:
    """The stand-in: records the markers of every POST; may kill the daemon on one."""

    port: int = 0
    posts: list[set[str]] = field(default_factory=list)
    kill_on_post: Callable[[], None] | None = None
    """Called once, on the next POST: kills the daemon (then, or after the answer)."""

    async def handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        self.posts.append(set(MARKER.findall(f"{payload.get('title')} {payload.get('message')}")))
        if (kill := self.kill_on_post) is not None:
            self.kill_on_post = None
            kill()
        return web.json_response({"ok": True})


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    """The webhook stand-in on 127.0.0.1."""
    stand_in = Webhook()
    app = web.Application()
    app.router.add_post("/alerts", stand_in.handle)
    async with listening(app) as port:
        stand_in.port = port
        yield stand_in


def write_project(tmp_path: Path, port: int) -> Path:
    """A config with one folder source, one rule and the webhook channel (a password in its
    URL, which must never be logged); short lease and first retry, so a restart goes on at once."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "crash.yaml").write_text(
        "rules:\n"
        "  - id: reactor\n"
        "    name: Reactor breach\n"
        "    severity: high\n"
        "    keywords: [reactor breach]\n",
        encoding="utf-8",
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        folder_config(f"json://monitor:{WEBHOOK_PASSWORD}@127.0.0.1:{port}/alerts", channel="hook")
        + "delivery_lease: 4s\n"
        "retry_first: 1s\n"
        "retry_max: 2s\n",
        encoding="utf-8",
    )
    return config


def story(marker: str) -> str:
    """Forty words of its own for each document: distinct stories, never folded into one alert
    as rewrites of the same story."""
    rng = random.Random(marker)
    syllables = ["ka", "lo", "mi", "ter", "van", "sol", "dur", "pe", "rix", "nam", "bo", "zel"]
    words = ["".join(rng.choices(syllables, k=3)) for _ in range(40)]
    return " ".join(words)


def add_documents(inbox: Path, run: int) -> list[str]:
    """Two new documents, each matching the rule once; their markers."""
    markers = [f"crash-{run:03d}-{part}" for part in "ab"]
    for marker in markers:
        staged = inbox.parent / f"{marker}.txt"
        staged.write_text(
            f"World\nReactor breach reported at plant {marker}\n"
            f"Engineers confirmed a reactor breach: {story(marker)}.\n",
            encoding="utf-8",
        )
        staged.rename(inbox / staged.name)  # whole files only: the daemon may be watching
    return markers


def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)


def kill_later(
    loop: asyncio.AbstractEventLoop, delay: float, process: asyncio.subprocess.Process
) -> None:
    """Kill ``process`` ``delay`` seconds from now: after the stand-in's answer is on its way."""
    loop.call_later(delay, kill, process)


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    problems = [line for line in lines if " ERROR " in line or "Traceback" in line]
    return "\n".join(problems[-10:] + lines[-30:])


def state(db: Database) -> str:
    """The matches and deliveries stored, for a failure's report."""
    with db.session() as session:
        matches = session.exec(select(func.count()).select_from(MatchRow)).one()
        rows = session.exec(select(DeliveryRow)).all()
    pending = [
        (row.id, row.attempts, row.claims, row.next_attempt_at, row.last_error)
        for row in rows
        if row.status != "sent"
    ]
    return f"{matches} matches, {len(rows)} deliveries; not sent: {pending}"


def delivered(db: Database, expected: int) -> bool:
    """True once ``expected`` matches are stored and every delivery is sent."""
    try:
        with db.session() as session:
            matches = session.exec(select(func.count()).select_from(MatchRow)).one()
            statuses = session.exec(select(DeliveryRow.status)).all()
    except OperationalError:  # the schema is not there yet, or the writer holds the lock
        return False
    return matches == expected and len(statuses) == expected and set(statuses) == {"sent"}


async def test_kill_9_at_random_moments_loses_nothing_and_counts_every_duplicate(
    tmp_path: Path, webhook: Webhook, wait_until: WaitUntil
) -> None:
    """After 52 SIGKILLs at random moments every match is delivered, at most one message per kill
    is sent again, and every duplicate the service saw is counted in the rows' redeliveries."""
    config = write_project(tmp_path, webhook.port)
    log = tmp_path / "daemon.log"
    rng = random.Random(os.environ.get("MONITOR_CRASH_SEED", "5"))
    markers: list[str] = []
    loop = asyncio.get_running_loop()
    for run in range(KILLS):
        markers += add_documents(tmp_path / "inbox", run)
        process = await start_daemon(config, log)
        moment = rng.choice(["random", "in-flight", "after-answer"])
        if moment == "in-flight":
            webhook.kill_on_post = partial(kill, process)
        elif moment == "after-answer":
            webhook.kill_on_post = partial(kill_later, loop, rng.uniform(0.0, 0.03), process)
        # A run with nothing left to send is killed at a random moment instead.
        timeout = rng.uniform(0.2, 3.0) if moment == "random" else 6.0
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), timeout)
        except TimeoutError:
            kill(process)
        webhook.kill_on_post = None
        code = await process.wait()
        assert code == -signal.SIGKILL, f"run {run} exited {code}: " + _tail(log)

    db = Database(f"sqlite:///{tmp_path / 'data' / 'monitor.db'}")
    final = await start_daemon(config, log)
    try:
        await wait_until(lambda: delivered(db, len(markers)), timeout=60, interval=0.2)
    except BaseException:
        print(state(db), _tail(log))  # shown by pytest when the test fails
        raise
    finally:
        final.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(final.wait(), 30) == 0

    seen = Counter(marker for post in webhook.posts for marker in post)
    assert set(seen) == set(markers)  # every match delivered
    duplicates = sum(count - 1 for count in seen.values())
    # A message that carries a match sent before: one alert, or a whole digest when a backlog
    # beyond the channel's burst went out as one (a slow machine's runs leave such backlogs).
    resent = 0
    before: set[str] = set()
    for post in webhook.posts:
        resent += bool(post & before)
        before |= post
    with db.session() as session:
        counted = store.redelivery_total(session)
    db.dispose()
    outcome = (
        f"{len(markers)} matches, {duplicates} sent twice in {resent} messages, {counted} counted"
    )
    # At most the one message in flight on the one channel may repeat per kill, and each match it
    # repeats is counted.
    assert resent <= KILLS, outcome
    assert duplicates <= counted, outcome
    assert counted >= 1, outcome  # the kills did hit sends in flight
    logged = log.read_text(errors="replace")
    assert "possible duplicate" in logged
    assert WEBHOOK_PASSWORD not in logged
    print(outcome)  # shown with -s
