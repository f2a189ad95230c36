"""Backtest: the pure comparison, the scan on a real SQLite file and PostgreSQL, and the command."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from monitor.backtest import (
    Checked,
    Comparison,
    Example,
    ProgressBar,
    RuleCounts,
    as_json,
    as_text,
    compare,
    progress_line,
    scan,
)
from monitor.cli import main
from monitor.matching.engine import Matcher
from monitor.matching.loader import RuleSet
from monitor.matching.rules import Rule
from monitor.models import Article
from monitor.pipeline import CompiledRules, Pipeline
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, FileRow, MatchRow, SourceRow

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

BEFORE = (
    Rule(id="protest", name="Protest", keywords=("protest",)),
    Rule(id="curfew", name="Curfew", keywords=("curfew",)),
    Rule(id="troops", name="Troops", keywords=("troops",)),
)
AFTER = (
    Rule(id="protest", name="Protest", keywords=("protest", "rally")),  # gains "Rally in Astana"
    Rule(id="curfew", name="Curfew", keywords=("curfew",), exclude=("curfew lifted",)),  # loses one
)  # "troops" is deleted
AFTER_YAML = """\
rules:
  - id: protest
    name: Protest
    keywords: [protest, rally]
  - id: curfew
    name: Curfew
    keywords: [curfew]
    exclude: [curfew lifted]
"""

ARTICLES = tuple(
    Article(title=title, body=body, source_id="seeds", key=f"{number}.txt")
    for number, (title, body) in enumerate(
        [
            ("Protest in Almaty", "Thousands protest downtown."),
            ("Curfew declared", "Troops patrol after a curfew from 11pm."),
            ("Rally in Astana", "A large rally gathered in the square."),
            ("Curfew lifted after protest", "Life returns to normal."),
        ],
        start=1,
    )
)

EXPECTED_RULES = [
    {"rule": "curfew", "now": 1, "stored": 2, "new": 0, "lost": 1},
    {"rule": "protest", "now": 3, "stored": 2, "new": 1, "lost": 0},
    {"rule": "troops", "now": 0, "stored": 1, "new": 0, "lost": 1},
]


def expected_examples(ids: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """The new and lost examples of BEFORE -> AFTER, newest article first."""
    return {
        "new": [{"article": ids["3.txt"], "title": "Rally in Astana", "rule": "protest"}],
        "lost": [
            {"article": ids["4.txt"], "title": "Curfew lifted after protest", "rule": "curfew"},
            {"article": ids["2.txt"], "title": "Curfew declared", "rule": "troops"},
        ],
    }


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """main() points monitor's log handler at the captured stderr of the test that called it,
    closed once that test ends: run each test without such a handler and restore them after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for handler in handlers:
        if getattr(handler, "_monitor_handler", False):  # the mark configure_logging sets
            root.removeHandler(handler)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def ingest(db: Database, rules: tuple[Rule, ...] = BEFORE, now: datetime = NOW) -> dict[str, int]:
    """Store ARTICLES through the real pipeline under ``rules``; return article ids by key."""
    flow = Pipeline(
        db,
        CompiledRules.build(RuleSet(rules=rules)),
        default_channels=("console",),
        clock=lambda: now,
    )
    flow.ingest("seeds", ARTICLES)
    with db.session() as session:
        return {row.key: row.id for row in session.exec(select(ArticleRow)) if row.id is not None}


def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, to compare before and after a backtest."""
    tables: tuple[Any, ...] = (ArticleRow, MatchRow, DeliveryRow, SourceRow, FileRow)
    with db.session() as session:
        return {
            table.__tablename__: sorted(
                (row.model_dump() for row in session.exec(select(table))), key=repr
            )
            for table in tables
        }


def run(db: Database, rules: tuple[Rule, ...], since: datetime, **kwargs: Any) -> Comparison:
    total, checked = scan(db, Matcher(rules), since, **kwargs)
    result = compare(checked, [rule.id for rule in rules])
    assert result.articles == total
    return result


# --- the pure comparison ----------------------------------------------------------------------


def test_compare_counts_now_stored_new_and_lost_per_rule() -> None:
    """Each rule counts articles matching now, stored, new (now only) and lost (stored only)."""
    checked = [
        Checked(1, "one", now=frozenset({"a", "b"}), stored=frozenset({"a"})),
        Checked(2, "two", now=frozenset(), stored=frozenset({"b", "gone"})),
        Checked(3, "three", now=frozenset({"a"}), stored=frozenset({"a"})),
    ]
    result = compare(checked, ["b", "a", "idle"])
    assert result.articles == 3
    assert result.rules == (
        RuleCounts("a", now=2, stored=2),
        RuleCounts("b", now=1, stored=1, new=1, lost=1),
        RuleCounts("gone", stored=1, lost=1, known=False),
        RuleCounts("idle"),
    )
    assert result.new == (Example(1, "one", "b"),)
    assert result.lost == (Example(2, "two", "b"), Example(2, "two", "gone"))
    assert (result.new_total, result.lost_total) == (1, 2)


def test_compare_limits_examples_but_counts_them_all() -> None:
    """``limit`` caps the example lists; the totals and per-rule counts still count everything."""
    checked = (Checked(n, f"t{n}", frozenset({"r"}), frozenset({"old"})) for n in range(50))
    result = compare(checked, ["r"], limit=3)
    assert [e.article_id for e in result.new] == [0, 1, 2]
    assert [e.article_id for e in result.lost] == [0, 1, 2]
    assert (result.new_total, result.lost_total) == (50, 50)
    assert compare([], ["r"], limit=0) == Comparison(articles=0, rules=(RuleCounts("r"),))


def test_text_report_is_a_table_by_rule_id_with_totals() -> None:
    """The text report aligns a table sorted by rule id, marks deleted rules, and sums up."""
    result = Comparison(
        articles=1234,
        rules=(RuleCounts("alpha", 1200, 1190, 12, 2), RuleCounts("zeta", 0, 1, 0, 1, known=False)),
        new=(Example(7, "Seven", "alpha"),),
        lost=(Example(8, "Eight", "zeta"),),
        new_total=12,
        lost_total=3,
    )
    assert as_text(result, 2.14).splitlines() == [
        "rule                   now  stored  new  lost",
        "alpha                1,200   1,190   12     2",
        "zeta (not in rules)      0       1    0     1",
        "",
        "new (1 of 12):",
        "  #7  alpha  Seven",
        "",
        "lost (1 of 3):",
        "  #8  zeta  Eight",
        "",
        "1,234 articles checked in 2.1 s; 12 new, 3 lost",
    ]


def test_progress_line_shows_count_percent_and_rate() -> None:
    """The progress line reads like ``backtest  12,000/40,000 articles  30%  5,100/s``."""
    assert progress_line(12_000, 40_000, 12_000 / 5_100) == (
        "backtest  12,000/40,000 articles   30%  5,100/s"
    )
    assert progress_line(0, 0, 0.0) == "backtest  0/0 articles  100%  0/s"


def test_progress_bar_redraws_at_most_once_per_interval_and_erases_itself() -> None:
    """The bar redraws in place only once the interval has passed, and wipes its line at the end."""
    ticks = iter([0.0, 0.01, 0.02, 0.15, 0.16, 0.3])  # start, then one tick per item
    stream = io.StringIO()
    bar = ProgressBar(stream, total=5, interval=0.1, clock=lambda: next(ticks))
    assert list(bar.track("abcde")) == list("abcde")
    frames = stream.getvalue().split("\r")[1:]
    assert [frame.strip() for frame in frames] == [
        "backtest  0/5 articles    0%  0/s",
        "backtest  3/5 articles   60%  20/s",
        "backtest  5/5 articles  100%  17/s",
        "",
        "",
    ]
    assert frames[-2] == " " * len(frames[1])  # the widest line drawn is wiped


# --- the scan, on a real SQLite file and the real PostgreSQL -----------------------------------


def test_backtest_reports_gained_lost_and_deleted_rules_and_writes_nothing(db: Database) -> None:
    """A widened rule gains an article, a narrowed one loses one, a deleted rule loses its match;
    the database is the same afterwards."""
    ids = ingest(db)
    before = snapshot(db)
    result = run(db, AFTER, NOW - timedelta(days=7), batch_size=3)
    document = as_json(result, NOW - timedelta(days=7))
    assert document["articles"] == 4
    assert document["since"] == "2026-01-03T12:00:00+00:00"
    assert document["rules"] == EXPECTED_RULES
    assert {"new": document["new"], "lost": document["lost"]} == expected_examples(ids)
    assert snapshot(db) == before


def test_scan_pages_give_the_same_result_whatever_the_batch_size(db: Database) -> None:
    """Keyset pages of any size, including ones ending exactly at the last article, agree."""
    ingest(db)
    since = NOW - timedelta(days=7)
    results = {size: run(db, AFTER, since, batch_size=size) for size in (1, 2, 4, 500)}
    assert all(result == results[500] for result in results.values())


def test_since_excludes_articles_stored_before_the_window(db: Database) -> None:
    """Only articles whose created_at falls within --since are counted, matched and compared."""
    ids = ingest(db)
    with db.session() as session:
        for row in session.exec(
            select(ArticleRow).where(col(ArticleRow.key).in_(["1.txt", "2.txt"]))
        ):
            row.created_at = NOW - timedelta(days=8)
            session.add(row)
    result = run(db, AFTER, NOW - timedelta(days=7))
    assert result.articles == 2
    assert as_json(result, NOW)["rules"] == [
        {"rule": "curfew", "now": 0, "stored": 1, "new": 0, "lost": 1},
        {"rule": "protest", "now": 2, "stored": 1, "new": 1, "lost": 0},
    ]
    assert [e.article_id for e in result.new + result.lost] == [ids["3.txt"], ids["4.txt"]]


def test_article_from_row_rebuilds_the_stored_article(db: Database) -> None:
    """An Article rebuilt from its row equals what the source produced, content hash included."""
    article = Article(
        title="T",
        body="B",
        summary="S",
        url="https://example.org/t",
        author="A",
        published=NOW,
        tags=("x", "y"),
        language="en",
        guid="g",
        source_id="feed",
        key="k",
        location="loc",
    )
    with db.session() as session:
        repo.insert_articles(session, [repo.Incoming.of(article)], NOW)
    with db.session() as session:
        row = session.exec(select(ArticleRow)).one()
    assert repo.article_from_row(row) == article
    assert repo.article_from_row(row).content_hash == row.content_hash


def test_database_without_tables_counts_as_empty_and_stays_empty(tmp_path: Path) -> None:
    """Backtesting a database the daemon never ran on reports nothing and creates no tables."""
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        total, checked = scan(db, Matcher(AFTER), NOW)
        assert (total, list(checked)) == (0, [])
        with db.session() as session:
            assert not repo.schema_exists(session)
    finally:
        db.dispose()


# --- the command ------------------------------------------------------------------------------


def write_config(tmp_path: Path, db_url: str, rules: str = AFTER_YAML) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "watch.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: {json.dumps(db_url)}\nrules: rules\n"
        "channels:\n  - id: console\n    url: console://\nnotify: [console]\n",
        encoding="utf-8",
    )
    return config


def test_command_prints_the_documented_json(
    db: Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor backtest --json` prints the per-rule counts and examples, and no progress bar
    when stderr is not a terminal."""
    ids = ingest(db, now=datetime.now(UTC) - timedelta(hours=1))
    config = write_config(tmp_path, db_url)
    assert main(["--config", str(config), "backtest", "--since", "2h", "--json"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert set(document) == {"articles", "since", "rules", "new", "lost"}
    assert document["articles"] == 4
    assert document["rules"] == EXPECTED_RULES
    assert {"new": document["new"], "lost": document["lost"]} == expected_examples(ids)
    assert err == ""


def test_command_text_report_and_limit(
    db: Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report lists the rules in order, caps the examples at --limit, and sums up."""
    ingest(db, now=datetime.now(UTC))
    config = write_config(tmp_path, db_url)
    assert main(["--config", str(config), "backtest", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["curfew", "protest", "troops"]
    assert "lost (1 of 2):" in lines
    assert re.fullmatch(r"4 articles checked in \d+\.\d s; 1 new, 2 lost", lines[-1])


def test_command_rules_option_and_a_window_with_nothing_in_it(
    db: Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rules replaces the config's rules; articles older than --since are not checked."""
    ingest(db, now=datetime.now(UTC) - timedelta(days=2))
    config = write_config(tmp_path, db_url)
    other = tmp_path / "other.yaml"
    other.write_text("rules:\n  - id: rally\n    name: R\n    keywords: [rally]\n", "utf-8")
    args = ["--config", str(config), "backtest", "--rules", str(other), "--json"]
    assert main([*args, "--since", "1d"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] == 0
    assert main([*args, "--since", "3d"]) == 0
    rules = {entry.pop("rule"): entry for entry in json.loads(capsys.readouterr().out)["rules"]}
    assert rules["rally"] == {"now": 1, "stored": 0, "new": 1, "lost": 0}
    assert rules["troops"] == {"now": 0, "stored": 1, "new": 0, "lost": 1}


def test_command_bad_rules_exit_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid rules stop the backtest with exit code 2 and file:line problems on stderr."""
    config = write_config(
        tmp_path, f"sqlite:///{tmp_path / 'm.db'}", "rules:\n  - id: x\n    name: X\n    kw: [a]\n"
    )
    assert main(["--config", str(config), "backtest"]) == 2
    assert "watch.yaml:4: unknown key 'kw'" in capsys.readouterr().err
