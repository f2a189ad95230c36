"""The database engine: SQLite (default) or PostgreSQL, and sessions on it.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed match survives power loss), a busy
timeout, and ``BEGIN IMMEDIATE`` for every transaction, so two writers queue on the busy timeout
instead of failing with "database is locked" when a reader upgrades (SQLAlchemy's documented
recipe for pysqlite). Database calls are blocking; the async daemon runs them in threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from monitor.store import (
    locks,
    tables,  # noqa: F401 (registers the tables on SQLModel.metadata)
)

BUSY_TIMEOUT_MS = 10_000


class Database:
    """One engine and the sessions made from it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self._reader = self.engine
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            self._reader = self.engine.execution_options(**{_READ_ONLY: True})

    def create_schema(self) -> None:
        """Create the tables that do not exist yet. Replicas starting together take turns (a
        lock on PostgreSQL), so none fails on a table another one is creating."""
        with self.engine.begin() as connection:
            locks.wait_in_transaction(connection, "schema")
            SQLModel.metadata.create_all(connection)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends, or rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, rolled back when the block ends. On SQLite its transaction
        is a deferred one: a snapshot that takes no write lock, so it neither waits for the
        writer nor holds it up."""
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def masked_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below (pysqlite's own is not usable).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_READ_ONLY = "monitor_read_only"
"""The execution option of :meth:`Database.reading`'s connections."""
