"""Named locks that one process at a time holds across every replica: PostgreSQL advisory locks.

A folder source is read by one replica at a time (see :mod:`monitor.sources.folder`): two replicas
reading the same file at once would both try to store its articles, and the second would fail on
the unique index instead of finding them stored.

On PostgreSQL :func:`exclusive` takes a session-level advisory lock with ``pg_try_advisory_lock``
on a connection of its own, in autocommit (a transaction open for a long scan would hold back
vacuum), and unlocks it when the block ends. It never waits: a lock another session holds means
another replica is at work, and the caller skips its turn. A replica that dies loses its
connection, and PostgreSQL releases the lock with it. Keys are 64-bit hashes of the current schema
and the name, so two deployments sharing a database in different schemas never block each other.

:func:`wait_in_transaction` is the waiting kind, held until the transaction ends
(``pg_advisory_xact_lock``): replicas starting at once take turns storing the feeds' rows.
(Migrations take a lock of their own, for the whole database: see :mod:`monitor.store.db`.)

On SQLite no lock is needed: every write transaction is ``BEGIN IMMEDIATE`` (see
:mod:`monitor.store.db`), so two processes reading one folder store each article once, the second
finding it stored; :func:`exclusive` always grants, and :func:`wait_in_transaction` does nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:  # only for annotations: the database module does not import this one
    from monitor.store.db import Database

__all__ = ["exclusive", "lock_key", "wait_in_transaction"]

log = logging.getLogger(__name__)


def lock_key(schema: str, name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of ``name`` in ``schema``."""
    digest = hashlib.blake2b(f"monitor\0{schema}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _key(connection: Connection, name: str) -> int:
    schema = connection.execute(select(func.current_schema())).scalar_one()
    return lock_key(str(schema), name)


def wait_in_transaction(connection: Connection, name: str) -> None:
    """Take the lock ``name`` until ``connection``'s transaction ends, waiting for it if another
    session holds it (blocking)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_key(connection, name))))


@contextmanager
def exclusive(db: Database, name: str) -> Iterator[bool]:
    """Hold the lock ``name`` for the block when no other session holds it: yields True then,
    else False at once (nothing to release). Blocking: run it in a thread."""
    if db.dialect != "postgresql":
        yield True
        return
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        key = _key(connection, name)
        if not connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one():
            yield False
            return
        try:
            yield True
        finally:
            try:
                released = connection.execute(select(func.pg_advisory_unlock(key))).scalar_one()
            except SQLAlchemyError:
                released = False
            if not released:
                # Never hand a connection holding the lock back to the pool: closing it is what
                # releases the lock for sure.
                log.warning("lock %s: unlock failed; its connection is closed instead", name)
                connection.invalidate()
