"""The database wrapper: sessions on a real SQLite file and on the real PostgreSQL, what the
tables hold on each backend."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import FeedRow, FileRow


def test_a_read_session_neither_waits_for_nor_blocks_the_writer(db: Database) -> None:
    """reading() sees the last commit while a write transaction is open (on SQLite: holds the
    database's write lock)."""
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


def test_a_rules_recent_stories_are_found_by_its_index(tmp_path: Path) -> None:
    """SQLite looks up a rule's recent stories through the (rule, created) index, not by
    scanning every story (every match whose story_of is NULL), which grew with the database.
    (SQLite only: the plan and the planner's mistake were SQLite's.)"""
    db = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    db.upgrade()
    statement = repo.stories_statement().params(
        rule_id="r1", last=7, since=datetime(2026, 1, 1, tzinfo=UTC)
    )
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as connection:
        plan = " ".join(
            str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )
    db.dispose()
    assert "USING INDEX ix_matches_rule_created" in plan, plan


def test_a_file_state_keeps_nanosecond_times_and_large_sizes(db: Database) -> None:
    """A file's modification time in nanoseconds and a refused file's size past 2**31 are
    stored as they are, on every backend (PostgreSQL's INTEGER held neither)."""
    state = FileRow(
        source_id="inbox",
        path="big.txt",
        size=5 * 2**30,
        mtime_ns=1_795_944_185_614_920_277,
        digest="retry",
        error="file too large",
    )
    with db.session() as session:
        repo.save_file_state(session, state)
    with db.session() as session:
        row = repo.file_state(session, "inbox", "big.txt")
        assert row is not None
        assert (row.size, row.mtime_ns) == (5 * 2**30, 1_795_944_185_614_920_277)


def test_passwords_in_the_url_query_are_masked_too() -> None:
    """libpq takes a password in the query as well; the masked URL and explained errors hide it,
    and a password holding another is masked whole."""
    database = Database("postgresql://u:sekret-1@127.0.0.1/x?password=sekret-12&sslmode=require")
    assert database.masked_url == "postgresql://u:***@127.0.0.1/x?password=***&sslmode=require"
    explained = database.explain(RuntimeError("login failed: sekret-12, sekret-1"))
    assert "sekret" not in explained
