"""The schema under Alembic, on a real SQLite file and on the real PostgreSQL: upgrades and the
adoption of databases made before migrations."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from monitor.errors import SchemaError
from monitor.store import migrate
from monitor.store.db import Database
from monitor.store.migrate import Upgrade
from monitor.store.tables import MatchRow, SourceRow

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "store"
PASSWORD = "s3cretpw"
HEAD = migrate.head()


@pytest.fixture
def url(db_url: str) -> str:
    """``db_url`` with a password on PostgreSQL (whose trust authentication ignores it), so
    that every message can be checked for it."""
    parsed = make_url(db_url)
    if parsed.get_backend_name() == "sqlite":
        return db_url
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    """A Database on an empty schema of each backend; nothing upgraded yet."""
    db = Database(url)
    yield db
    db.dispose()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def create_as_before_migrations(url: str) -> None:
    """Make the tables as monitor did before migrations: create_all's DDL, kept in a fixture."""
    backend = make_url(url).get_backend_name()
    script = (FIXTURES / f"pre_migrations.{backend}.sql").read_text(encoding="utf-8")
    lines = [line for line in script.splitlines() if not line.startswith("--")]
    execute(url, *(s for s in "\n".join(lines).split(";") if s.strip()))


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def add_source(db: Database, source_id: str) -> None:
    with db.session() as session:
        session.add(SourceRow(id=source_id, type="folder"))


def source_ids(db: Database) -> list[str]:
    with db.reading() as session:
        return [row.id for row in session.exec(select(SourceRow)).all()]


# --------------------------------------------------------------------------------------------
# Upgrades


def test_upgrade_creates_the_schema_at_head(database: Database) -> None:
    """On an empty database, upgrade creates every table and records the head revision."""
    assert migrate.status(database).state == "empty"
    assert database.upgrade() == Upgrade(before=None, after=HEAD)
    assert table_names(database.url) == {*SQLModel.metadata.tables, "alembic_version"}
    assert migrate.status(database) == migrate.Status(HEAD, HEAD, "head")


def test_a_second_upgrade_changes_nothing(database: Database) -> None:
    """Upgrading a database at head again keeps its revision and its rows."""
    database.upgrade()
    add_source(database, "seeds")
    assert database.upgrade() == Upgrade(before=HEAD, after=HEAD)
    assert source_ids(database) == ["seeds"]


def test_the_migrations_make_exactly_the_models_schema(database: Database) -> None:
    """After an upgrade Alembic finds no difference between the database and the models, so a
    change to monitor/store/tables.py without a migration fails this test."""
    database.upgrade()
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []


def test_constraints_have_the_conventions_names_on_both_backends(database: Database) -> None:
    """Primary and foreign keys are named by the naming convention (PostgreSQL's own names) on
    SQLite too, so a later migration can drop them by name on either backend."""
    database.upgrade()
    with database.engine.connect() as connection:
        inspector = inspect(connection)
        assert inspector.get_pk_constraint("matches")["name"] == "matches_pkey"
        assert {fk["name"] for fk in inspector.get_foreign_keys("matches")} == {
            "matches_article_id_fkey",
            "matches_story_of_fkey",
        }


def test_an_unknown_revision_stops_the_upgrade(database: Database) -> None:
    """A database at a revision this version lacks (a newer version upgraded it) is left alone
    with an error naming the revision."""
    database.upgrade()
    execute(database.url, "UPDATE alembic_version SET version_num = '0123456789ab'")
    with pytest.raises(SchemaError) as raised:
        database.upgrade()
    message = str(raised.value)
    assert "0123456789ab" in message
    assert "newer version" in message
    assert database.masked_url in message
    assert PASSWORD not in message
    assert migrate.status(database).state == "unknown"


def test_sqlite_connections_enforce_foreign_keys_after_an_upgrade(tmp_path: Path) -> None:
    """The upgrade turns SQLite's foreign keys off on its connection only: the pooled connection
    that the next session gets enforces them again, with the usual busy timeout."""
    db = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        db.upgrade()
        with db.session() as session:
            assert session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        with pytest.raises(IntegrityError), db.session() as session:
            session.add(
                MatchRow(
                    article_id=404,
                    rule_id="r",
                    rule_name="R",
                    severity="high",
                    created_at=datetime.now(UTC),
                )
            )
    finally:
        db.dispose()


# --------------------------------------------------------------------------------------------
# Databases made before migrations


def test_tables_made_before_migrations_are_adopted_at_head(database: Database) -> None:
    """Tables as create_all made them, with rows, match the head schema: the upgrade stamps them
    at head and keeps every row."""
    create_as_before_migrations(database.url)
    add_source(database, "seeds")
    assert migrate.status(database).state == "unversioned"
    assert database.upgrade() == Upgrade(before=None, after=HEAD, adopted=True)
    assert source_ids(database) == ["seeds"]
    assert database.upgrade() == Upgrade(before=HEAD, after=HEAD)


def test_tables_that_differ_from_head_stop_the_upgrade_saying_what_differs(
    database: Database,
) -> None:
    """Tables made before migrations from older models (no ix_matches_rule_created, no
    deliveries.redeliveries) are left as they are, with an error that names the database by its
    masked URL, lists the differences and says what to do."""
    create_as_before_migrations(database.url)
    execute(
        database.url,
        "DROP INDEX ix_matches_rule_created",
        "ALTER TABLE deliveries DROP COLUMN redeliveries",
    )
    with pytest.raises(SchemaError) as raised:
        database.upgrade()
    message = str(raised.value)
    assert f"database {database.masked_url} " in message
    assert "index ix_matches_rule_created on matches (rule_id, created_at): missing" in message
    assert "column deliveries.redeliveries: missing" in message
    assert "monitor db upgrade" in message
    assert PASSWORD not in message
    assert "alembic_version" not in table_names(database.url)


# --------------------------------------------------------------------------------------------
# Packaging and the developers' command line


def test_developers_alembic_command_finds_the_migrations(database: Database) -> None:
    """The alembic command line, configured in pyproject.toml, opens the database named by
    `-x url=` and finds nothing to autogenerate on one at head (`alembic check`)."""
    database.upgrade()
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={database.url}", "check"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_every_file_of_the_migrations_is_package_data() -> None:
    """The wheel ships env.py, the template and every revision: each file under
    monitor/store/migrations matches a package-data pattern of pyproject.toml."""
    import tomllib
    from fnmatch import fnmatch

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["monitor"]
    package = ROOT / "monitor"
    files = [
        path.relative_to(package).as_posix()
        for path in (package / "store" / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert any(name.startswith("store/migrations/versions/") for name in files)
    unshipped = [name for name in files if not any(fnmatch(name, p) for p in patterns)]
    assert unshipped == []
