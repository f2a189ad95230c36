"""Alembic's environment for monitor's schema: where the revisions in versions/ run.

monitor runs them through :mod:`monitor.store.migrate`, on a connection that it has opened, locked
and will commit (``config.attributes["connection"]``). Developers run them through the alembic
command line (configured in pyproject.toml) on the database named by ``-x url=...`` or
$MONITOR_DATABASE, to write a revision with ``--autogenerate`` or print its SQL with ``--sql``;
docs/operations.md shows how.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from alembic import context
from alembic.runtime.migration import MigrationInfo
from sqlalchemy import Connection, TypeDecorator
from sqlmodel import SQLModel

from monitor.store.db import Database

log = logging.getLogger("monitor.store.migrate")


def render_item(type_: str, item: Any, _autogen: Any) -> str | Literal[False]:
    """Write a column of a decorated type (SQLModel's AutoString, UTCDateTime) as the plain type
    it stores, so that a revision depends on SQLAlchemy alone, never on today's models."""
    if type_ == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False


def log_step(*, step: MigrationInfo, **_kwargs: Any) -> None:
    """Log each revision as it is applied (or stamped), in monitor's own words."""
    what = "stamped" if step.is_stamp else "upgraded" if step.is_upgrade else "downgraded"
    revision = ", ".join(step.destination_revision_ids) or "none"
    log.info("database schema %s to revision %s", what, revision)


OPTIONS: dict[str, Any] = {
    "target_metadata": SQLModel.metadata,
    # ALTERs as batch operations, which SQLite needs (it rebuilds the table); on PostgreSQL they
    # are plain ALTER TABLE statements.
    "render_as_batch": True,
    "render_item": render_item,
    "on_version_apply": log_step,
}


def run(connection: Connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "MONITOR_DATABASE"
    )
    if not url:
        raise SystemExit(
            "which database? alembic -x url=sqlite:///data/scratch.db ... (or set MONITOR_DATABASE)"
        )
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    database = Database(url)
    try:
        with database.migrating() as connection:
            run(connection)
    finally:
        database.dispose()


main()
