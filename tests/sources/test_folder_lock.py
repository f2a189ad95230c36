"""A folder is read by one replica at a time: a PostgreSQL advisory lock per folder source (real
server); on SQLite, where writes are serialised, two readers store each article once anyway."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import func as sql_func
from sqlmodel import select as sql_select

from monitor.app import App, Daemon
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.pipeline import CompiledRules, IngestResult, Pipeline
from monitor.settings import FolderSourceSettings
from monitor.sources.folder import FolderSource
from monitor.store.db import Database
from monitor.store.locks import exclusive, lock_key
from monitor.store.tables import ArticleRow, FileRow

RULE = Rule(id="breach", name="Breach", keywords=("reactor breach",))
SEED = Path(__file__).resolve().parents[2] / "seeds" / "000_b84c25b2169af3e7.txt"
WaitUntil = Callable[..., Awaitable[None]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def source(db: Database, folder: Path) -> FolderSource:
    return FolderSource(
        FolderSourceSettings(id="inbox", type="folder", path=folder),
        Pipeline(db, CompiledRules.build(RuleSet(rules=(RULE,))), ("console",)),
    )


def write_documents(folder: Path, count: int) -> None:
    for n in range(count):
        (folder / f"doc-{n:02d}.txt").write_text(
            f"World\nReport {n}\nEngineers confirmed a reactor breach at plant {n}.\n",
            encoding="utf-8",
        )


def stored(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(sql_select(sql_func.count()).select_from(ArticleRow)).one())


@pytest.mark.postgres
def test_a_scan_is_skipped_while_another_replica_reads_the_folder(
    postgres: Database, postgres_schema_url: str, folder: Path
) -> None:
    """While another replica holds the folder's lock, a scan reads nothing and the files of
    events wait (None); once the lock is released, the scan reads the folder."""
    write_documents(folder, 3)
    reader = source(postgres, folder)
    other = Database(postgres_schema_url)
    try:
        with exclusive(other, "folder:inbox") as mine:
            assert mine
            assert reader.scan() == IngestResult()
            assert reader.read([folder / "doc-00.txt"]) is None
            assert stored(postgres) == 0
    finally:
        other.dispose()
    assert reader.scan().new == 3


@pytest.mark.postgres
async def test_a_replica_that_dies_leaves_the_folder_to_the_others(
    postgres: Database, postgres_schema_url: str, folder: Path, wait_until: WaitUntil
) -> None:
    """The lock goes with the connection that took it: when a replica's connection drops (the
    process killed), another replica reads the folder."""
    write_documents(folder, 2)
    reader = source(postgres, folder)
    engine = create_engine(postgres_schema_url)
    connection = engine.connect()
    try:
        schema = connection.execute(select(func.current_schema())).scalar_one()
        key = lock_key(str(schema), "folder:inbox")
        assert connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one()
        assert reader.scan() == IngestResult()
        connection.invalidate()  # its socket closed, as when the process dies
        await wait_until(lambda: reader.scan().new == 2, timeout=10, interval=0.1)
    finally:
        connection.close()
        engine.dispose()


@pytest.mark.postgres
def test_deployments_in_other_schemas_do_not_share_folder_locks(
    postgres_url: str, postgres_schema_url: str
) -> None:
    """Two deployments sharing a database in two schemas each hold their own folder's lock."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    first = Database(postgres_schema_url)
    second = Database(f"{postgres_url}?options=-csearch_path%3D{schema}")
    try:
        with exclusive(first, "folder:inbox") as one, exclusive(second, "folder:inbox") as two:
            assert (one, two) == (True, True)
            with exclusive(first, "folder:inbox") as again:
                assert not again
    finally:
        first.dispose()
        second.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_two_replicas_scanning_one_folder_at_once_store_each_article_once(
    db: Database, folder: Path
) -> None:
    """Two replicas scanning the same folder at the same moment store each document once and
    record no file as failed: on PostgreSQL one holds the lock and the other skips; on SQLite
    the writes are serialised, and the second finds each article stored."""
    write_documents(folder, 20)
    readers = [source(db, folder), source(db, folder)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda reader: reader.scan(), readers))
    assert sum(result.new for result in results) == 20
    assert stored(db) == 20
    with db.session() as session:
        errors = session.exec(sql_select(FileRow.error).where(FileRow.error.is_not(None))).all()  # type: ignore[union-attr]
    assert errors == []


@pytest.mark.postgres
async def test_the_files_of_events_are_read_once_the_other_replica_is_done(
    tmp_path: Path,
    postgres_schema_url: str,
    wait_until: WaitUntil,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A daemon whose watcher sees a new file while another replica reads the folder waits for
    the lock, then reads the file."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "breach.yaml").write_text(
        "rules:\n  - {id: breach, name: Breach, keywords: [reactor breach]}\n", encoding="utf-8"
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: '{postgres_schema_url}'\n"
        "rules: rules\n"
        "sources:\n"
        "  - {id: inbox, type: folder, path: inbox, interval: 1h}\n"
        "channels: [{id: console, url: 'console://'}]\n"
        "notify: [console]\n",
        encoding="utf-8",
    )
    other = Database(postgres_schema_url)

    def articles() -> int:
        try:
            return stored(other)
        except ProgrammingError:  # the daemon has not created its tables yet
            return -1

    caplog.set_level(logging.DEBUG, logger="monitor.sources.folder")
    daemon = Daemon(App.load(config))
    running = asyncio.create_task(daemon.run())
    try:
        # The first scan has run and the watcher is live once a first file is read.
        write_documents(inbox, 1)
        await wait_until(lambda: articles() == 1, timeout=15)
        with exclusive(other, "folder:inbox") as mine:
            assert mine
            shutil.copy(SEED, inbox / "late.txt")
            await wait_until(lambda: "events wait" in caplog.text, timeout=15)
            assert articles() == 1
        await wait_until(lambda: articles() == 2, timeout=15)
    finally:
        daemon.stop.set()
        assert await asyncio.wait_for(running, timeout=15) == 0
        other.dispose()
