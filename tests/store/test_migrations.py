"""The schema under Alembic, on a real SQLite file and on the real PostgreSQL: upgrades, the
adoption of databases made before migrations, concurrent upgrades, and `monitor db`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

from monitor.cli import main
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


def write_config(folder: Path, url: str) -> str:
    (folder / "rules").mkdir(exist_ok=True)
    path = folder / "monitor.yaml"
    path.write_text(f"database: {json.dumps(url)}\nrules: rules\n", encoding="utf-8")
    return str(path)


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


def test_tables_made_before_migrations_are_adopted_and_upgraded(database: Database) -> None:
    """Tables as create_all made them, with rows, are the baseline's: the upgrade stamps them at
    the baseline, runs the later revisions (64-bit file sizes), keeps every row, and leaves a
    schema with no difference from the head's."""
    create_as_before_migrations(database.url)
    add_source(database, "seeds")
    assert migrate.status(database).state == "unversioned"
    assert database.upgrade() == Upgrade(before=None, after=HEAD, adopted=True)
    assert source_ids(database) == ["seeds"]
    with database.engine.connect() as connection:
        assert migrate.differences(connection) == []
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
# Several processes at once

BARRIER = """
import sys, time
from pathlib import Path
from monitor.cli import main

ready, go, config = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal within 60 s")
    time.sleep(0.002)
sys.exit(main(["db", "upgrade", "--config", config]))
"""


def test_three_processes_upgrading_at_once_all_succeed(tmp_path: Path, url: str) -> None:
    """Three `monitor db upgrade` processes released at the same moment on one database all
    exit 0; exactly one of them found it empty, and it ends at head."""
    config = write_config(tmp_path, url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BARRIER, str(tmp_path / f"ready{i}"), str(go), config],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{i}").exists() for i in range(3)):
            assert time.monotonic() < deadline, "the processes did not start within 60 s"
            assert all(p.poll() is None for p in processes), "a process ended before the start"
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            process.kill()
    codes = [p.returncode for p in processes]
    assert codes == [0, 0, 0], results
    outputs = [out for out, _err in results]
    assert sum("before: none (empty database)" in out for out in outputs) == 1, outputs
    assert all(f"after:  {HEAD} (head)" in out for out in outputs), outputs
    db = Database(url)
    try:
        assert migrate.status(db).state == "head"
    finally:
        db.dispose()


# --------------------------------------------------------------------------------------------
# The command line


def test_db_upgrade_and_current_print_the_revisions(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor db current` says a new database is empty, `monitor db upgrade` prints the
    revision before and after, and `db current` then shows head; no password anywhere."""
    config = write_config(tmp_path, url)
    masked = make_url(url).render_as_string(hide_password=True)
    assert main(["db", "current", "--config", config]) == 0
    assert main(["db", "upgrade", "--config", config]) == 0
    assert main(["db", "current", "--config", config]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"database {masked}",
        "revision: none (empty database: `monitor db upgrade` creates the schema)",
        f"database {masked}",
        "before: none (empty database)",
        f"after:  {HEAD} (head)",
        f"database {masked}",
        f"revision: {HEAD} (head)",
    ]
    assert PASSWORD not in out + err


def test_db_upgrade_of_differing_tables_exits_3_with_the_differences(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor db upgrade` on tables older than head prints what differs and exits 3."""
    create_as_before_migrations(url)
    execute(url, "DROP INDEX ix_matches_rule_created")
    assert main(["db", "upgrade", "--config", write_config(tmp_path, url)]) == 3
    out, err = capsys.readouterr()
    assert "index ix_matches_rule_created on matches (rule_id, created_at): missing" in err
    assert PASSWORD not in out + err


def test_the_daemon_does_not_start_on_differing_tables(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor run --once` upgrades first, so on tables it cannot adopt it stops, exit 3,
    before reading any source."""
    create_as_before_migrations(url)
    execute(url, "DROP INDEX ix_matches_rule_created")
    monkeypatch.setenv("MONITOR_DATABASE", url)
    assert main(["--config", str(project / "config" / "monitor.yaml"), "run", "--once"]) == 3
    out, err = capsys.readouterr()
    assert "ix_matches_rule_created" in err
    assert PASSWORD not in out + err
    db = Database(url)
    try:
        assert source_ids(db) == []
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["db", "current"],
        ["db", "purge", "--older-than", "90d"],
        ["run", "--once"],
    ],
)
def test_an_unreachable_database_exits_3_without_the_password(
    tmp_path: Path, postgres_url: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """When the server does not answer, `monitor db ...` and `monitor run` say so in one line
    that names the database by its masked URL, and exit 3."""
    closed = make_url(postgres_url).set(password=PASSWORD, port=1)
    config = write_config(tmp_path, closed.render_as_string(hide_password=False))
    assert main([*command, "--config", config]) == 3
    out, err = capsys.readouterr()
    assert f"database {closed.render_as_string(hide_password=True)}: " in err
    assert "port 1 failed" in err
    assert PASSWORD not in out + err


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
