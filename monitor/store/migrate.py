"""The schema, managed by Alembic migrations (``monitor/store/migrations/versions/``).

:func:`upgrade` brings a database to the newest revision, the head. Several processes may call it
at once (replicas starting together): each upgrades inside :meth:`Database.migrating`, a
transaction that no other upgrade of the same database can be in at the same time, so the first
creates or alters the schema and the others then find it at head. DDL is transactional on both
backends: an upgrade that fails changes nothing.

A database created before migrations existed (monitor's tables, no ``alembic_version`` table) is
adopted when its schema is the baseline revision's: Alembic's comparison with the head schema
finds nothing but what the revisions after the baseline change (:data:`SINCE_BASELINE`). It is
stamped at the baseline and upgraded from there like any other. Otherwise
:class:`~monitor.errors.SchemaError` lists what differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect
from sqlmodel import SQLModel

from monitor.errors import SchemaError
from monitor.store import tables  # noqa: F401 (registers the tables on SQLModel.metadata)

if TYPE_CHECKING:
    from monitor.store.db import Database

SCRIPT_LOCATION = "monitor.store:migrations"
"""The migration environment, as a package resource: found wherever monitor is installed."""
BASELINE = "f1b2a399c501"
"""The revision whose schema is the one create_all made before migrations existed."""
SINCE_BASELINE: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("modify_type", "files", "size"),
        ("modify_type", "files", "mtime_ns"),
        ("add_column", "feeds", "claimed_by"),
        ("add_column", "feeds", "claimed_until"),
    }
)
"""What the revisions after :data:`BASELINE` change in the baseline's tables, as (kind, table,
column) of compare_metadata's differences: a pre-migrations database differs from the head schema
by these and is still the baseline's. A revision that alters a baseline table adds its changes
here (the adoption tests, on frozen create_all scripts, fail until it does); one that only adds
tables or columns adds ("add_table", name, "") or ("add_column", table, column)."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What :func:`upgrade` did: the revision before (None: no revision recorded) and after, and
    whether the tables were an earlier version's, adopted by stamping them at the baseline."""

    before: str | None
    after: str | None
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """A database's revision next to this version's head. ``state`` is one of

    head         at this version's schema
    behind       at an older revision: an upgrade brings it to head
    empty        no schema yet: an upgrade creates it
    unversioned  monitor's tables without a revision (made before migrations): an upgrade adopts
                 them if they match the baseline schema
    unknown      at a revision this version does not have (a newer version upgraded it)
    """

    current: str | None
    head: str
    state: str


def upgrade(db: Database) -> Upgrade:
    """Bring ``db``'s schema to head, adopting a pre-migrations database whose schema matches.

    Raises SchemaError, naming the database by its masked URL, when the tables are an earlier
    version's that differ from the head schema, or the database is at a revision this version
    does not know; nothing is changed then.
    """
    script = _script()
    with db.migrating() as connection:
        before = _current(connection)
        adopted = False
        if before is None and _has_tables(connection):
            found = [_describe(diff) for diff in _raw_differences(connection) if not _since(diff)]
            if found:
                raise SchemaError(_mismatch(db.masked_url, found))
            command.stamp(_config(connection), BASELINE)
            adopted = True
        elif before is not None and not _known(script, before):
            raise SchemaError(_unknown(db.masked_url, before))
        command.upgrade(_config(connection), "head")
        return Upgrade(before, _current(connection), adopted)


def status(db: Database) -> Status:
    """``db``'s revision and state (see :class:`Status`), read without writing anything."""
    script = _script()
    head = script.get_current_head()
    assert head is not None  # the versions folder ships with the package
    with db.reading() as session:
        connection = session.connection()
        current = _current(connection)
        if current is None:
            state = "unversioned" if _has_tables(connection) else "empty"
        elif current == head:
            state = "head"
        else:
            state = "behind" if _known(script, current) else "unknown"
    return Status(current, head, state)


def head() -> str:
    """This version's newest revision."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def differences(connection: Connection) -> list[str]:
    """How the schema of monitor's tables on ``connection`` differs from the head schema, one
    line per difference (empty: none). Tables that are not monitor's are left out."""
    return [_describe(diff) for diff in _raw_differences(connection)]


def _raw_differences(connection: Connection) -> list[tuple[Any, ...]]:
    ours = set(SQLModel.metadata.tables)

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or name in ours

    context = MigrationContext.configure(connection, opts={"include_name": include_name})
    return list(_flat(compare_metadata(context, SQLModel.metadata)))


def _since(diff: tuple[Any, ...]) -> bool:
    """Whether a difference from the head schema is one the revisions after the baseline make."""
    kind: str = diff[0]
    if kind.startswith("modify_"):
        return (kind, diff[2], diff[3]) in SINCE_BASELINE
    if kind == "add_table":
        return (kind, diff[1].name, "") in SINCE_BASELINE
    if kind == "add_column":
        return (kind, diff[2], diff[3].name) in SINCE_BASELINE
    return False


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(None))


def _config(connection: Connection | None) -> Config:
    """Alembic's configuration, built here rather than read from an alembic.ini: the migrations
    run on ``connection``, which monitor opened, locked and commits (see env.py)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        script.get_revision(revision)
    except CommandError:  # Alembic's word for "no such revision" here
        return False
    return True


def _has_tables(connection: Connection) -> bool:
    """True when any of monitor's tables exists."""
    return bool(set(inspect(connection).get_table_names()) & set(SQLModel.metadata.tables))


def _mismatch(database: str, found: list[str]) -> str:
    listed = "\n".join(f"  - {line}" for line in found)
    return (
        f"database {database} has monitor's tables from a version that predates schema "
        f"migrations, and they differ from this version's schema:\n{listed}\n"
        "Nothing was changed. Back the database up, then either make these changes by hand and "
        "run `monitor db upgrade` again (it adopts tables that match), or point `database` at a "
        "new, empty database."
    )


def _unknown(database: str, revision: str) -> str:
    return (
        f"database {database} is at schema revision {revision}, which this version of monitor "
        f"does not have (its newest is {head()}): a newer version upgraded it. Run that version, "
        "or restore a backup taken before the upgrade."
    )


def _flat(diffs: Iterable[Any]) -> Iterable[tuple[Any, ...]]:
    """compare_metadata's differences, with its lists of column changes unpacked."""
    for diff in diffs:
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


def _describe(diff: tuple[Any, ...]) -> str:
    """One line for one of compare_metadata's differences: what the database lacks ("missing")
    or has beyond this version's schema ("not in this version"), or how a column differs."""
    kind: str = diff[0]
    if kind.startswith("modify_"):
        _kind, _schema, table, column, _existing, found, expected = diff
        what = kind.removeprefix("modify_")
        return f"column {table}.{column}: {what} is {found}, this version has {expected}"
    action, _, thing = kind.partition("_")
    if action not in ("add", "remove"):
        return repr(diff)
    item = diff[-1]
    where = {
        "table": lambda: f"table {item.name}",
        "column": lambda: f"column {diff[2]}.{item.name}",
        "index": lambda: f"index {item.name} on {item.table.name}{_columns(item)}",
        "constraint": lambda: f"unique constraint {item.name} on {item.table.name}{_columns(item)}",
        "fk": lambda: (
            f"foreign key on {item.table.name}{_columns(item)} to {item.referred_table.name}"
        ),
    }.get(thing)
    if where is None:
        return repr(diff)
    return f"{where()}: {'missing' if action == 'add' else 'not in this version'}"


def _columns(item: Any) -> str:
    return " (" + ", ".join(str(getattr(c, "name", c)) for c in item.columns) + ")"
