"""The matching benchmark's harness: its corpus is deterministic and its engines agree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "matching.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/matching.py, imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_matching", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(bench: ModuleType) -> object:
    """A small world: 60 articles, 150 rules."""
    return bench.make_world(seed=7, articles=60, universe=150)


def test_world_is_deterministic(bench: ModuleType, world: object) -> None:
    """The same seed and sizes give the same articles and rules."""
    again = bench.make_world(seed=7, articles=60, universe=150)
    assert again.docs == world.docs
    assert again.rules == world.rules


@pytest.mark.parametrize("spelling", ["keys", "query"])
def test_engines_agree(bench: ModuleType, world: object, spelling: str, tmp_path: Path) -> None:
    """monitor, tantivy and one-regex-per-term match the same (rule, article) pairs."""
    pytest.importorskip("tantivy")
    if spelling == "query" and not bench.query_supported()[0]:
        pytest.skip("this monitor does not accept `query:` yet")
    rules, _notes = bench.spelt(world.rules, spelling, len(world.rules))
    bench.write_rules(tmp_path / "rules", rules, world.aliases, spelling)
    specs, actors = bench.specs_from_json(bench.spec_json(rules, world.aliases))

    run, _load, _compile = bench.monitor_engine(tmp_path / "rules", world.docs)
    ours = set(run())
    assert ours, "the generated rules should match some articles"
    assert set(bench.TantivyBaseline(specs, actors).run(world.docs, 1_000)) == ours
    assert set(bench.TantivyBaseline(specs, actors).run(world.docs[:5], 1)) == {
        pair for pair in ours if pair[1] < 5
    }
    assert set(bench.ReBaseline(specs, actors).run(world.docs)) == ours


def test_stages_report_the_fixed_cost_an_oracle_and_the_whole(
    bench: ModuleType, world: object, tmp_path: Path
) -> None:
    """--profile's breakdown runs the public Matcher three ways over the same articles, and its
    oracle (each article against only its matching rules) matches what the whole rule set does
    (checked inside, before anything is timed)."""
    rules, _notes = bench.spelt(world.rules, "query", len(world.rules))
    bench.write_rules(tmp_path / "rules", rules, world.aliases, "query")
    report = bench._stages(tmp_path / "rules", world.docs, len(world.rules))
    lines = report.splitlines()
    assert lines[0].startswith(f"where the time goes at {len(world.rules):,} rules")
    labels = [line.rsplit(maxsplit=1)[0].strip() for line in lines[1:4]]
    assert labels[0] == "an article's fixed cost (a rule never matching; lower bound)"
    assert labels[1].startswith("an oracle: only the rules that match it (")
    assert labels[2] == f"all {len(world.rules):,} rules"
    assert "a match costs about" in report
