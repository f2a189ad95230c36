"""Rule files: the shipped watchlist loads; every mistake is reported at its file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.matching.loader import load_rules
from monitor.models import Severity

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_rules_load() -> None:
    """The bundled watchlist is valid and defines the lethal-force rule as the issue states it."""
    ruleset = load_rules(ROOT / "rules", channels={"console"})
    rule = ruleset.by_id()["kz-lethal-force"]
    assert rule.severity is Severity.CRITICAL
    assert "shoot without warning" in rule.keywords
    assert {actor.id for actor in rule.actors} >= {"tokayev"}
    assert "Kassym-Jomart Tokayev" in ruleset.actors["tokayev"].aliases
    assert set(ruleset.actors) >= {
        "tokayev",
        "nazarbayev",
        "csto",
        "putin",
        "xi-jinping",
        "erdogan",
        "blinken",
    }


def test_five_mistakes_in_a_rules_folder_give_five_located_errors(tmp_path: Path) -> None:
    """Bad YAML, an unknown key, a wrong type, an unknown actor and a duplicate id: five errors."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(
        "actors:\n"
        "  tok: {name: Tokayev}\n"
        "rules:\n"
        "  - id: r1\n"
        "    name: One\n"
        "    keyowrds: [x]\n"
        "    actors: [tok]\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yml").write_text("rules:\n  - id: r2\n    name: [oops\n", encoding="utf-8")
    (tmp_path / "sub" / "c.yaml").write_text(
        "rules:\n"
        "  - id: r3\n"
        "    name: Three\n"
        "    slop: many\n"
        "    keywords: [x]\n"
        "  - id: r4\n"
        "    name: Four\n"
        "    actors: [nobody]\n"
        "  - id: r5\n"
        "    name: Five\n"
        "    keywords: [y]\n"
        "  - id: r5\n"
        "    name: Five again\n"
        "    keywords: [z]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert len(found) == 5, found
    assert any(
        f.startswith("a.yaml:6: unknown key 'keyowrds' (did you mean 'keywords'?)") for f in found
    )
    assert any(f.startswith("b.yml:4: YAML syntax error") for f in found)
    assert any(f.startswith("sub/c.yaml:4: rules.0.slop:") for f in found)


def test_cross_file_checks(tmp_path: Path) -> None:
    """Unknown actors, unknown channels, duplicates across files and empty rules are reported."""
    (tmp_path / "actors.yaml").write_text("actors:\n  tok: {name: Tokayev}\n", encoding="utf-8")
    (tmp_path / "more.yaml").write_text("actors:\n  tok: {name: Tokaev}\n", encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - id: a\n"
        "    name: A\n"
        "    actors: [tokk]\n"
        "    notify: [slak]\n"
        "  - id: b\n"
        "    name: B\n"
        "    exclude: [x]\n"
        "  - id: c\n"
        "    name: C\n"
        "    keywords: ['!!!']\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, channels={"slack"})
    found = sorted(str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems)
    assert found == [
        "more.yaml:2: duplicate actor id 'tok' (also actors.yaml:2)",
        "rules.yaml:11: '!!!' has no words to match",
        "rules.yaml:4: unknown actor 'tokk' (did you mean 'tok'?)",
        "rules.yaml:5: unknown channel 'slak' (did you mean 'slack'?)",
        "rules.yaml:6: rule 'b' has nothing to match: give it actors, keywords or a query",
    ]


def test_hidden_files_are_ignored_and_empty_files_are_fine(tmp_path: Path) -> None:
    """Editor swap files under dot-folders are not rules; an empty rule file defines nothing."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("{{{", encoding="utf-8")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {id: r, name: R, keywords: [x]}\n", encoding="utf-8"
    )
    assert [rule.id for rule in load_rules(tmp_path).rules] == ["r"]


def test_missing_rules_path_is_an_error(tmp_path: Path) -> None:
    """A rules path that does not exist is reported rather than silently loading nothing."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope")


def test_extended_rule_format_loads(tmp_path: Path) -> None:
    """Queries, term mappings, stemming, fields, min_hits, sources and languages load as given."""
    (tmp_path / "r.yaml").write_text(
        "actors:\n"
        "  us:\n"
        "    name: United States\n"
        "    aliases: [{text: US, case_sensitive: true}]\n"
        "rules:\n"
        "  - id: q\n"
        "    name: Q\n"
        "    query: '@us AND (\"shoot* without warning\"~2 OR curfew) AND NOT game'\n"
        "    keywords: [{text: state of emergency, slop: 0}, martial law]\n"
        "    stem: true\n"
        "    language: english\n"
        "    fields: [title, body]\n"
        "    min_hits: 2\n"
        "    sources: [wire]\n"
        "    languages: [en]\n",
        encoding="utf-8",
    )
    (rule,) = load_rules(tmp_path, sources={"wire"}).rules
    assert rule.query is not None
    assert [a.id for a in rule.query_actors] == ["us"]
    assert rule.fields == ("title", "body")
    assert (rule.min_hits, rule.sources, rule.languages, rule.stem) == (2, ("wire",), ("en",), True)
    assert rule.keywords[1] == "martial law"


def test_query_errors_name_file_line_and_column(tmp_path: Path) -> None:
    """A malformed query is reported at its line, with its column and what was expected."""
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - id: a\n"
        "    name: A\n"
        "    query: 'curfew AND (army OR'\n"
        "  - id: b\n"
        "    name: B\n"
        "    query: '@nobody'\n"
        "  - id: c\n"
        "    name: C\n"
        "    query: shoot\n"
        "    sources: [elsewhere]\n"
        "    stem: true\n"
        "    language: klingon\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, sources={"wire"})
    found = sorted(str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems)
    assert found == [
        "r.yaml:11: unknown source 'elsewhere'",
        "r.yaml:13: unknown stemmer language 'klingon'",
        "r.yaml:4: query column 20: unexpected end of query: expected a term or '('",
        "r.yaml:7: query column 2: unknown actor 'nobody'",
    ]


def test_values_that_would_silently_match_nothing_are_errors(tmp_path: Path) -> None:
    """A wordless actor name, unknown language, three-letter code or empty `fields` is refused."""
    (tmp_path / "r.yaml").write_text(
        "actors:\n"
        "  nobody:\n"
        "    name: '???'\n"
        "rules:\n"
        "  - id: a\n"
        "    name: A\n"
        "    actors: [nobody]\n"
        "    language: klingon\n"
        "  - id: b\n"
        "    name: B\n"
        "    keywords: [x]\n"
        "    languages: [en, eng]\n"
        "  - id: c\n"
        "    name: C\n"
        "    keywords: [x]\n"
        "    fields: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    found = {str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems}
    assert found == {
        "r.yaml:3: name '???' has no words to match",
        "r.yaml:8: unknown stemmer language 'klingon'",
        "r.yaml:12: rules.1.languages.1: String should match pattern '^[a-z]{2}$'",
        "r.yaml:16: rules.2.fields: Tuple should have at least 1 item after validation, not 0",
    }


def test_too_deep_query_is_a_located_error_not_a_crash(tmp_path: Path) -> None:
    """A query of thousands of NOTs is reported at its line and column, not a RecursionError."""
    query = "NOT " * 2400 + "a"
    (tmp_path / "r.yaml").write_text(
        f"rules:\n  - id: a\n    name: A\n    query: {query}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert found == ["r.yaml:4: query column 1: nested deeper than 100 levels"]


def test_rule_files_that_cannot_be_read_are_problems_not_skipped(tmp_path: Path) -> None:
    """A FIFO or a symlink loop named like a rule file is reported (it is not read: a FIFO would
    block), as are a rules path that is a device or a loop; none gives "0 rules"."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "x.yaml").symlink_to(rules / "y.yaml")
    (rules / "y.yaml").symlink_to(rules / "x.yaml")
    os.mkfifo(rules / "pipe.yaml")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ConfigError) as caught:
        load_rules(rules)
    found = {(Path(p.file).name, p.message.split(":")[1].strip()) for p in caught.value.problems}
    assert found == {
        ("pipe.yaml", "[Errno 22] not a regular file"),
        ("x.yaml", "[Errno 40] Too many levels of symbolic links"),
        ("y.yaml", "[Errno 40] Too many levels of symbolic links"),
    }
    with pytest.raises(ConfigError, match="not a regular file"):
        load_rules(Path("/dev/null"))
    with pytest.raises(ConfigError, match="rules path is a broken symlink or a symlink loop"):
        load_rules(tmp_path / "loop")
