"""The feed benchmark's smoke run: its server, its table, and what it says about monitor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "feeds.py"
QUICK_FEEDS = 300
UNSUPPORTED = "monitor: feed sources not supported by this build"


def test_quick_run_answers_every_feed(tmp_path: Path) -> None:
    """`--quick --engines monitor` serves its feeds, then reports monitor's two rounds.

    Until monitor polls feed sources, the benchmark must say so; once it does, the server must
    have answered every feed with a 200 in the first round and a 304 in the revalidation round.
    """
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--engines", "monitor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    assert "server: a process of its own on 127.0.0.1; self-check ok" in output
    header = r"^engine +round +feeds +wall s +round s +feeds/s"
    assert re.search(header, output, re.MULTILINE), output
    assert "\ntargets (monitor):\n" in output
    rows = {
        found["round"]: found
        for found in re.finditer(
            r"^monitor +(?P<round>first|revalidate) +(?P<feeds>[\d,]+) +(?P<rest>.*)$",
            output,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"first", "revalidate"}, output
    first = rows["first"]
    assert int(first["feeds"].replace(",", "")) == QUICK_FEEDS
    if UNSUPPORTED in first["rest"]:
        assert rows["revalidate"]["rest"].strip() == "not run"
        assert output.count("not run (monitor: feed sources not supported") == 4
        return
    # wall s, round s, feeds/s, new items, items/s, peak RSS MB, cpu s, 200s, 304s, conns, conc,
    # srv cpu s
    for name, ok, not_modified in (("first", QUICK_FEEDS, 0), ("revalidate", 0, QUICK_FEEDS)):
        figures = rows[name]["rest"].split()
        assert len(figures) >= 12, rows[name][0]
        # The round, as monitor logged it, is part of the whole command.
        assert 0 < float(figures[1]) <= float(figures[0]), rows[name][0]
        assert int(figures[7].replace(",", "")) == ok, rows[name][0]
        assert int(figures[8].replace(",", "")) == not_modified, rows[name][0]
    assert int(first["rest"].split()[3].replace(",", "")) > 0, "the first round stored no items"
    assert re.search(r"^  revalidate 10,000 feeds in < 10 s .* not run", output, re.MULTILINE)
