"""The database wrapper's sessions, on a real SQLite file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlmodel import select

from monitor.store.db import Database
from monitor.store.tables import FeedRow


def test_a_read_session_neither_waits_for_nor_blocks_the_writer(tmp_path: Path) -> None:
    """On SQLite, reading() sees the last commit while a write transaction holds the lock."""
    db = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    db.create_schema()
    with db.session() as session:
        session.add(FeedRow(source_id="a", url="http://example.org/a"))
    holding, done = threading.Event(), threading.Event()

    def writer() -> None:
        with db.session() as session:  # BEGIN IMMEDIATE: holds the write lock until done
            session.add(FeedRow(source_id="b", url="http://example.org/b"))
            session.flush()
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with db.reading() as session:
            seen = [row.source_id for row in session.exec(select(FeedRow)).all()]
        # A write transaction would have waited for the lock (its busy timeout is 10 s).
        assert time.monotonic() - started < 5
        assert seen == ["a"]
    finally:
        done.set()
        thread.join()
    with db.reading() as session:
        assert sorted(row.source_id for row in session.exec(select(FeedRow)).all()) == ["a", "b"]
    db.dispose()
