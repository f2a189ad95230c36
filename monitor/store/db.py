"""The database engine: SQLite (default) or PostgreSQL, and sessions on it.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed match survives power loss), a busy
timeout, and ``BEGIN IMMEDIATE`` for every transaction, so two writers queue on the busy timeout
instead of failing with "database is locked" when a reader upgrades (SQLAlchemy's documented
recipe for pysqlite). Database calls are blocking; the async daemon runs them in threads.

The schema is Alembic's (see :mod:`monitor.store.migrate`): :meth:`Database.upgrade` brings it to
this version's, and is what every process that writes calls first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlmodel import Session

from monitor.errors import SchemaError
from monitor.logs import SECRET_NAME
from monitor.store import (
    migrate,
    tables,  # noqa: F401 (registers the tables on SQLModel.metadata)
)

BUSY_TIMEOUT_MS = 10_000
MIGRATION_WAIT_MS = 600_000
"""How long an upgrade waits on SQLite for another process's upgrade of the same file to end."""
MIGRATION_LOCK = 0x6D6F6E69746F72
"""The PostgreSQL advisory lock key that upgrades take: "monitor" in ASCII. One key for the whole
database, so two upgrades never run at once, whatever schema their search_path names."""


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

    def upgrade(self) -> migrate.Upgrade:
        """Bring the schema to this version's (see :func:`monitor.store.migrate.upgrade`).
        Raises :class:`~monitor.errors.SchemaError` when it cannot."""
        return migrate.upgrade(self)

    @contextmanager
    def migrating(self) -> Iterator[Connection]:
        """A connection in a transaction that no other process migrating this database can be in
        at the same time, committed when the block ends, rolled back on error.

        PostgreSQL: the transaction holds an advisory lock (:data:`MIGRATION_LOCK`), so a second
        upgrade waits for the first to commit, then sees its schema (DDL is transactional).
        SQLite: BEGIN IMMEDIATE holds the database's write lock, which a second upgrade waits for
        up to :data:`MIGRATION_WAIT_MS` (a table rebuild can take longer than a write). Foreign
        keys are off meanwhile, as SQLite requires for rebuilding a table that others reference
        (Alembic's batch mode), and checked before the commit.
        """
        with self.engine.connect() as connection:
            sqlite = self.dialect == "sqlite"
            if sqlite:
                # Outside any transaction: inside one, SQLite ignores a change of foreign_keys.
                _pragmas(connection, foreign_keys="OFF", busy_timeout=MIGRATION_WAIT_MS)
            try:
                with connection.begin():
                    if not sqlite:
                        connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                    yield connection
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise SchemaError(
                                f"database {self.masked_url}: the upgrade would leave rows whose "
                                f"foreign keys point nowhere (table, row, parent: {broken[:5]}); "
                                "nothing was changed"
                            )
            finally:
                if sqlite and not connection.invalidated:
                    # The connection goes back to the pool: as every other one is set up.
                    _pragmas(connection, foreign_keys="ON", busy_timeout=BUSY_TIMEOUT_MS)

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
        """The URL with its password masked, in the user:password@ part and in the query
        (``?password=``, libpq's ``sslpassword=``...)."""
        url = make_url(self.url)
        query = {
            name: "***" if SECRET_NAME.match(name) else value for name, value in url.query.items()
        }
        shown = url.set(query=query).render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")

    def explain(self, error: BaseException) -> str:
        """``error`` (a driver's, say) as one line naming the database by its masked URL, with
        the passwords masked wherever the driver may have quoted them."""
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        for secret in _secrets(self.url):
            reason = reason.replace(secret, "***")
        return f"database {self.masked_url}: {reason}"


def _secrets(url: str) -> list[str]:
    parsed = make_url(url)
    found = [str(parsed.password)] if parsed.password else []
    for name, value in parsed.query.items():
        if SECRET_NAME.match(name):
            found += [value] if isinstance(value, str) else list(value)
    # Longest first: a password that holds another is masked whole.
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def _pragmas(connection: Connection, **values: object) -> None:
    """Set SQLite pragmas on the driver's connection, bypassing the engine's "begin" hook."""
    raw = connection.connection.driver_connection
    assert raw is not None
    for name, value in values.items():
        raw.execute(f"PRAGMA {name}={value}")


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
        # SQLite's lower() folds ASCII only; text search needs what PostgreSQL's lower() does.
        dbapi_connection.create_function(LOWER, 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


LOWER = "monitor_lower"
"""On SQLite, a SQL function lower-casing all of Unicode as str.lower does (see
:mod:`monitor.store.reads`)."""

_READ_ONLY = "monitor_read_only"
"""The execution option of :meth:`Database.reading`'s connections."""
