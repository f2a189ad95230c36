"""The monitor command as users run it: check, test, matches, and run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import main
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_b84c25b2169af3e7.txt"


def test_check_passes_on_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    """`monitor check` on the bundled config and rules prints no error and exits 0."""
    assert main(["--config", str(ROOT / "config" / "monitor.yaml"), "check"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ")
    assert err == ""


def test_check_prints_every_problem_as_file_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every mistake in the rules is printed as file:line: message; the exit code is 2."""
    (project / "rules" / "bad.yaml").write_text(
        "rules:\n  - id: x\n    name: X\n    keyowrds: [a]\n"
        "  - id: y\n    name: Y\n    actors: [nobody]\n",
        encoding="utf-8",
    )
    assert main(["--config", str(project / "config" / "monitor.yaml"), "check"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert any(
        line.endswith("bad.yaml:4: unknown key 'keyowrds' (did you mean 'keywords'?)")
        for line in lines
    )
    assert any(line.endswith("bad.yaml:7: unknown actor 'nobody'") for line in lines)


def test_test_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """`monitor test --rules R --json INPUT` needs no config and keeps the documented shape."""
    status = main(["test", "--rules", str(ROOT / "rules"), "--json", str(SEED)])
    assert status == 0
    output = json.loads(capsys.readouterr().out)
    (document,) = output["documents"]
    assert document["input"] == str(SEED)
    assert document["title"] == "Kazakhstan orders to shoot protesters without warning"
    matches = {m["rule"]: m for m in document["matches"]}
    lethal = matches["kz-lethal-force"]
    assert lethal["severity"] == "critical"
    for hit in lethal["hits"]:
        assert set(hit) >= {"term", "field", "start", "end", "text"}
        assert isinstance(hit["start"], int)
        assert isinstance(hit["end"], int)
    body = SEED.read_text(encoding="utf-8").split("\n", 2)[2]
    keyword = [h for h in lethal["hits"] if h["term"] == "shoot without warning"]
    assert [(h["field"], h["text"]) for h in keyword] == [
        ("title", "shoot protesters without warning"),
        ("body", "shoot to kill without warning"),
    ]
    assert keyword[1]["text"] == body[keyword[1]["start"] : keyword[1]["end"]]
    wording = matches["kz-crackdown-wording"]  # a query rule: its terms are hits too
    assert {"query", "actor"} <= {hit["kind"] for hit in wording["hits"]}
    assert any(hit["text"] == "eliminated" for hit in wording["hits"])


def test_test_reports_unreadable_inputs_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed input is reported on stderr with its path; the others are still matched."""
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    assert main(["test", "--rules", str(ROOT / "rules"), str(bad), str(SEED)]) == 1
    out, err = capsys.readouterr()
    assert str(bad) in err
    assert "kz-lethal-force" in out


def run_monitor(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MONITOR_DATABASE", None)
    # The bundled config's HTTP server: on a free port, not 8080, which may be taken here.
    env["MONITOR_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_run_on_the_bundled_config_alerts_the_sample_then_stops_on_sigterm(project: Path) -> None:
    """`monitor run` on the bundled config prints the sample's critical alert within 15 s, then
    exits 0 within 10 s of SIGTERM; a second run alerts nothing again."""
    config = str(project / "config" / "monitor.yaml")
    process = run_monitor("--config", config, "run", cwd=project)
    assert process.stdout is not None
    deadline = time.monotonic() + 15
    seen: list[str] = []
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline and not any("kz-lethal-force" in line for line in seen):
        line = process.stdout.readline()
        if line:
            seen.append(line)
        elif process.poll() is not None:
            break
        else:
            time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:
        rest, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    output = "".join(seen) + (rest or "")
    assert "kz-lethal-force" in output, err
    assert "[CRITICAL]" in output
    assert process.returncode == 0, err
    assert (project / "data" / "monitor.db").exists()

    again = run_monitor("--config", config, "run", "--once", cwd=project)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "kz-lethal-force" not in out


@pytest.mark.slow
def test_secrets_in_channel_urls_never_reach_logs_or_output(project: Path) -> None:
    """With DEBUG logs and failing channels, no password or token of a channel URL is printed."""
    secrets = ("s3cretPassw0rd", "tok3nAbcdefgh12345")
    config = project / "config" / "monitor.yaml"
    config.write_text(
        config.read_text(encoding="utf-8")
        .replace(
            "  - id: console\n    url: console://\n",
            "  - id: console\n    url: console://\n"
            f"  - id: mail\n    url: mailto://desk:{secrets[0]}@127.0.0.1:1?from=m@example.org&to=a@example.org\n"
            f"  - id: hook\n    url: json://bot:{secrets[1]}@127.0.0.1:1/alerts\n",
        )
        .replace("notify: [console]", "notify: [console, mail, hook]"),
        encoding="utf-8",
    )
    process = run_monitor(
        "--config", str(config), "--log-level", "DEBUG", "run", "--once", cwd=project
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "failed (attempt 1)" in err  # the failures were logged...
    for secret in secrets:
        assert secret not in out
        assert secret not in err  # ...without the secrets
    listing = run_monitor("--config", str(config), "matches", cwd=project)
    listed, listing_err = listing.communicate(timeout=60)
    assert "kz-lethal-force" in listed
    assert all(secret not in listed + listing_err for secret in secrets)


def test_shipped_json_schema_is_generated_from_the_loader_models(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/rules.schema.json is exactly what `monitor schema` prints from the rule models."""
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    shipped = json.loads((ROOT / "docs" / "rules.schema.json").read_text(encoding="utf-8"))
    assert printed == shipped
    assert set(printed["$defs"]["RuleModel"]["properties"]) >= {"query", "stem", "min_hits"}


def test_test_explain_says_why_rules_did_not_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor test --explain` gives, for each rule that did not match, the part that failed."""
    article = tmp_path / "a.txt"
    article.write_text("World\nTokayev declares curfew\nNothing more.\n", encoding="utf-8")
    assert main(["test", "--rules", str(ROOT / "rules"), "--explain", "--json", str(article)]) == 0
    (document,) = json.loads(capsys.readouterr().out)["documents"]
    assert document["explain"]["kz-lethal-force"] == "keywords: none found"
    assert document["explain"]["kz-foreign-troops"].startswith("actors: no alias of")
    assert "kz-emergency-rule" not in document["explain"]


def test_a_database_that_refuses_the_login_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that reads the database says which one (its password masked, in the URL
    and in its query) and why, and exits 3, when PostgreSQL refuses the login."""
    config = tmp_path / "monitor.yaml"
    url = "postgresql://nosuchuser:dbsecret-4711@127.0.0.1:5432/test?password=dbsecret-4712"
    config.write_text(
        f"database: {url}\nrules: {ROOT / 'rules'}\nsources: []\n"
        "channels:\n  - {id: console, url: 'console://'}\n",
        encoding="utf-8",
    )
    for command in (["sources"], ["matches"], ["deliveries"], ["backtest"]):
        assert main([*command, "--config", str(config)]) == 3, command
        out, err = capsys.readouterr()
        assert "dbsecret" not in out + err
        assert "database postgresql://nosuchuser:***@127.0.0.1:5432/test?password=***" in err
        assert "Traceback" not in err


def test_a_fifo_is_refused_as_config_and_as_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A named pipe given as the config or as a document is refused at once, not read forever."""
    config, document = tmp_path / "monitor.yaml", tmp_path / "article.txt"
    os.mkfifo(config)
    os.mkfifo(document)
    assert main(["check", "--config", str(config)]) == 2
    assert main(["test", "--rules", str(ROOT / "rules"), str(document)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: cannot read: [Errno 22] not a regular file" in err
    assert f"{document}: [Errno 22] not a regular file" in err


def test_a_documents_escape_sequences_do_not_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """monitor test prints each document's title: its control characters (a screen clear, a
    window-title change) are dropped, the rest shown."""
    document = tmp_path / "article.txt"
    document.write_text("Title \x1b[2J\x1b]0;pwned\x07here\n\nTokayev spoke.\n", encoding="utf-8")
    main(["test", "--rules", str(ROOT / "rules"), str(document)])
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert f"{document}: Title [2J]0;pwnedhere" in out
