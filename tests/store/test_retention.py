"""Retention: old articles without matches are purged in batches, on SQLite and PostgreSQL; the
daemon's daily job and `monitor db purge` run it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from monitor import app as app_module
from monitor import settings as settings_module
from monitor.app import App
from monitor.cli import main
from monitor.errors import ConfigError
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article
from monitor.pipeline import CompiledRules, Pipeline
from monitor.retention import purge, purge_batch, referencing_columns
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow
from tests.conftest import folder_config, running

WaitUntil = Callable[..., Awaitable[None]]
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=120)
RULE = Rule(id="quake", name="Earthquake", keywords=("earthquake",))


def article(key: str, text: str) -> Article:
    return Article(title=f"Report {key}", body=text, source_id="wire", key=key, location=key)


def store(db: Database, when: datetime, *articles: Article) -> None:
    """Ingest ``articles`` as if stored at ``when``, matched against RULE."""
    flow = Pipeline(db, CompiledRules.build(RuleSet(rules=(RULE,))), ("desk",), clock=lambda: when)
    flow.ingest("wire", list(articles))


def keys(db: Database) -> list[tuple[str, str]]:
    """(key, body) of every stored article version."""
    with db.session() as session:
        rows = session.exec(select(ArticleRow).order_by(ArticleRow.id)).all()
    return [(row.key, row.body) for row in rows]


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        matches = len(session.exec(select(MatchRow)).all())
        deliveries = len(session.exec(select(DeliveryRow)).all())
    return matches, deliveries


def test_old_unmatched_articles_are_purged_matched_and_recent_ones_kept(db: Database) -> None:
    """Only an old article none of whose versions matched goes; its matched neighbours, every
    version of a matched article, and recent articles stay, with all matches and deliveries."""
    store(
        db,
        OLD,
        article("old-unmatched", "Markets were calm."),
        article("old-matched", "An earthquake struck."),
        article("edited", "An earthquake struck the coast."),
    )
    # A later, unmatched version of an article whose first version matched: kept, or the next
    # fetch of it would be a new article and alert again.
    store(db, OLD + timedelta(days=1), article("edited", "Roads reopened on the coast."))
    store(db, NOW, article("recent-unmatched", "Markets were calm again."))
    before = counts(db)

    assert purge(db, NOW - timedelta(days=90)) == 1

    assert keys(db) == [
        ("old-matched", "An earthquake struck."),
        ("edited", "An earthquake struck the coast."),
        ("edited", "Roads reopened on the coast."),
        ("recent-unmatched", "Markets were calm again."),
    ]
    assert counts(db) == before
    assert purge(db, NOW - timedelta(days=90)) == 0


def test_purge_goes_in_bounded_batches_until_done(db: Database) -> None:
    """One batch deletes at most its limit; purge repeats batches until nothing is left."""
    store(db, OLD, *(article(f"calm-{n}", f"Markets were calm, day {n}.") for n in range(5)))
    with db.session() as session:
        assert purge_batch(session, NOW, limit=2) == 2
    assert len(keys(db)) == 3
    assert purge(db, NOW, batch=2) == 3
    assert keys(db) == []


def test_every_table_referencing_articles_is_checked() -> None:
    """The purge protects articles referenced from any table; today only matches refer to them
    (deliveries and outlets hang off matches, which are never deleted)."""
    assert [f"{c.table.name}.{c.name}" for c in referencing_columns()] == ["matches.article_id"]


def test_retention_is_a_positive_duration_and_off_by_default(tmp_path: Path) -> None:
    """`retention: 90d` parses; zero or garbage is a problem at its line; absent means keep all."""
    path = tmp_path / "monitor.yaml"
    path.write_text("rules: rules\n", encoding="utf-8")
    (tmp_path / "rules").mkdir()
    assert settings_module.load(path).retention is None
    path.write_text("rules: rules\nretention: 90d\n", encoding="utf-8")
    assert settings_module.load(path).retention == timedelta(days=90)
    for bad in ("0s", "soon"):
        path.write_text(f"rules: rules\nretention: {bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            settings_module.load(path)
        [problem] = caught.value.problems
        assert str(problem).startswith(f"{path}:2: retention: ")


def write_project(tmp_path: Path, retention: str | None) -> Path:
    base = tmp_path.resolve()
    (base / "inbox").mkdir()
    (base / "rules").mkdir()
    (base / "rules" / "quake.yaml").write_text(
        "rules:\n  - id: quake\n    name: Earthquake\n    keywords: [earthquake]\n",
        encoding="utf-8",
    )
    config = base / "monitor.yaml"
    config.write_text(
        folder_config("console://", extra=f"retention: {retention}\n" if retention else ""),
        encoding="utf-8",
    )
    return config


async def test_daemon_purges_on_its_retention_job(
    tmp_path: Path,
    wait_until: WaitUntil,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With `retention: 90d` the running daemon's job purges the old unmatched article, keeps
    the matched one, and logs how many it purged."""
    config = write_project(tmp_path, "90d")
    db = Database(App.load(config).settings.database)
    db.upgrade()
    store(db, OLD, article("old-unmatched", "Calm."), article("old-matched", "An earthquake."))
    monkeypatch.setattr(app_module, "RETENTION_FIRST_RUN", 0.0)
    caplog.set_level(logging.INFO, logger="monitor.retention")
    try:
        async with running(config, wait_until):
            await wait_until(lambda: [k for k, _b in keys(db)] == ["old-matched"], timeout=15)
            await wait_until(lambda: "retention: purged 1 articles" in caplog.text, timeout=15)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_db_purge_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_schema_url: str
) -> None:
    """`monitor db purge` uses the config's retention or --older-than, on PostgreSQL too."""
    config = write_project(tmp_path, None)
    config.write_text(
        config.read_text().replace("sqlite:///data/monitor.db", postgres_schema_url),
        encoding="utf-8",
    )
    db = Database(postgres_schema_url)
    db.upgrade()
    store(db, OLD, article("old-unmatched", "Calm."), article("old-matched", "An earthquake."))
    store(db, OLD + timedelta(days=50), article("older-unmatched", "Calm, still."))
    try:
        with pytest.raises(SystemExit):
            main(["db", "purge", "--config", str(config)])
        assert "retention" in capsys.readouterr().err
        assert main(["db", "purge", "--config", str(config), "--older-than", "100d"]) == 0
        assert capsys.readouterr().out.startswith("purged 1 articles stored before ")
        config.write_text(config.read_text() + "retention: 30d\n", encoding="utf-8")
        assert main(["db", "purge", "--config", str(config)]) == 0
        assert capsys.readouterr().out.startswith("purged 1 articles stored before ")
        assert [key for key, _body in keys(db)] == ["old-matched"]
    finally:
        db.dispose()


def test_db_purge_on_a_database_never_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a database no daemon has used (no tables yet), the purge says it purged nothing."""
    config = write_project(tmp_path, "90d")
    assert main(["db", "purge", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("purged 0 articles")
