"""Named locks that one process at a time holds across every replica: PostgreSQL advisory locks.

:func:`wait_in_transaction` takes a lock until the transaction ends, waiting for it
(``pg_advisory_xact_lock``): replicas starting at once take turns creating the tables. Keys are
64-bit hashes of the current schema and the name, so two deployments sharing a database in
different schemas never block each other.

On SQLite no lock is needed: every write transaction is ``BEGIN IMMEDIATE`` (see
:mod:`monitor.store.db`), which serialises them already; :func:`wait_in_transaction` does
nothing there.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, func, select

__all__ = ["lock_key", "wait_in_transaction"]


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
