"""Hot reload: the daemon watches its config and rules, swaps valid edits in without a restart and
without missing an article, and keeps the previous rules (showing why) when an edit is invalid."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watchfiles
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from monitor import settings as settings_module
from monitor.app import Daemon
from monitor.reload import (
    ReloadStatus,
    compare,
    content_digest,
    running_settings,
    watch_roots,
)
from monitor.store.tables import ArticleRow, MatchRow
from tests.conftest import folder_config, free_port, running, start_daemon

ROOT = Path(__file__).resolve().parent.parent
WaitUntil = Callable[..., Awaitable[None]]

OLD_RULE = "rules:\n  - id: watch-old\n    name: Old watch\n    keywords: [quokka]\n"
NEW_RULE = "rules:\n  - id: watch-new\n    name: New watch\n    keywords: [wombat]\n"


def write_project(tmp_path: Path, channel_url: str) -> Path:
    """A config with a watched folder, one rule file (``watch-old``) and one channel."""
    base = tmp_path.resolve()
    (base / "inbox").mkdir()
    (base / "rules").mkdir()
    (base / "rules" / "watch.yaml").write_text(OLD_RULE, encoding="utf-8")
    config = base / "monitor.yaml"
    config.write_text(config_text(channel_url), encoding="utf-8")
    return config


def config_text(channel_url: str, *, extra_source: bool = False) -> str:
    more = "  - {id: annex, type: folder, path: annex, interval: 1h}\n" if extra_source else ""
    return folder_config(channel_url, sources=more)


def words(seed: str) -> str:
    """Thirty words of its own for each article, so no two are one story folded together."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ter", "van", "sol", "dur", "pe", "rix", "nam", "bo", "zel"]
    return " ".join("".join(rng.choices(syllables, k=3)) for _ in range(30))


def publish(inbox: Path, name: str, text: str) -> None:
    """Drop a whole article file into the watched folder (written aside, then moved in)."""
    staged = inbox.parent / f".{name}.txt"
    staged.write_text(f"World\nReport {name}\n{text} {words(name)}.\n", encoding="utf-8")
    staged.rename(inbox / f"{name}.txt")


def matched(daemon: Daemon) -> dict[str, set[str]]:
    """Every stored article (by file name) with the rules that matched it."""
    try:
        with daemon.db.reading() as session:
            articles = session.exec(select(ArticleRow.id, ArticleRow.location)).all()
            matches = session.exec(select(MatchRow.article_id, MatchRow.rule_id)).all()
    except OperationalError:  # the schema is not there yet
        return {}
    rules: dict[int | None, set[str]] = {}
    for article_id, rule_id in matches:
        rules.setdefault(article_id, set()).add(rule_id)
    return {str(location): rules.get(article_id, set()) for article_id, location in articles}


async def test_valid_edit_applies_without_restart_and_misses_no_article(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """Articles published before, during and after a rule edit are each matched by exactly one
    of the old and new rule sets; after the reload, only the new rule matches."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    inbox = config.parent / "inbox"
    rule_file = config.parent / "rules" / "watch.yaml"
    async with running(config, wait_until) as daemon:
        published: list[str] = []
        reloaded = asyncio.Event()

        async def publisher() -> None:
            # Every 50 ms, through the reload, and for ten more after it.
            after = 0
            while after < 10:
                name = f"both-{len(published):03d}"
                publish(inbox, name, "quokka and wombat sighted")
                published.append(f"{name}.txt")
                after += reloaded.is_set()
                await asyncio.sleep(0.05)

        writing = asyncio.create_task(publisher())
        await wait_until(lambda: len(matched(daemon)) >= 3, timeout=15)
        rule_file.write_text(NEW_RULE, encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        reloaded.set()
        await asyncio.wait_for(writing, timeout=15)
        await wait_until(lambda: set(published) <= set(matched(daemon)), timeout=15)

        by_article = matched(daemon)
        rule_sets = {name: by_article[name] for name in published}
        assert all(len(rules) == 1 for rules in rule_sets.values()), rule_sets
        assert {"watch-old"} in rule_sets.values()
        assert {"watch-new"} in rule_sets.values()

        publish(inbox, "wombat-only", "a wombat crossed the road")
        publish(inbox, "quokka-only", "a quokka crossed the road")
        await wait_until(
            lambda: {"wombat-only.txt", "quokka-only.txt"} <= set(matched(daemon)), timeout=15
        )
        assert matched(daemon)["wombat-only.txt"] == {"watch-new"}
        assert matched(daemon)["quokka-only.txt"] == set()
        status = daemon.reload_status
        assert status.ok
        assert status.rules == 1
        assert status.problems == ()
        assert status.restart_needed == ()
        await wait_until(lambda: any("wombat-only" in str(r["json"]) for r in sink.requests))


INVALID_RULES = {
    "yaml-syntax": (
        "rules:\n  - id: watch-new\n    name: New watch\n    keywords: [wombat\n",
        5,
        "YAML syntax error",
    ),
    "bad-query": (
        "rules:\n  - id: watch-new\n    name: New watch\n    query: 'wombat AND (quokka'\n",
        4,
        "query column 19: expected ')'",
    ),
}


def assert_rejected(
    status: ReloadStatus, caplog: pytest.LogCaptureFixture, where: str, message: str
) -> None:
    """The status and an ERROR record show the one problem at ``where`` (file:line)."""
    assert not status.ok
    assert status.reloads == 0
    assert status.rules == 1
    assert status.attempted_at is not None
    assert status.attempted_at > status.loaded_at
    assert len(status.problems) == 1, status.problems
    assert str(status.problems[0]).startswith(where), status.problems
    assert message in status.problems[0].message
    assert status.as_json()["problems"] == [str(problem) for problem in status.problems]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [e for e in errors if where in e and message in e], errors


@pytest.mark.parametrize("case", sorted(INVALID_RULES))
async def test_invalid_rule_edit_keeps_old_rules_and_shows_the_problem_until_fixed(
    tmp_path: Path,
    sink: Any,
    wait_until: WaitUntil,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    """An invalid rule file leaves the old rule matching, its problem in the status and the log
    at its file and line; the fixed file applies the new rule."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    inbox = config.parent / "inbox"
    rule_file = config.parent / "rules" / "watch.yaml"
    text, line, message = INVALID_RULES[case]
    async with running(config, wait_until) as daemon:
        caplog.set_level(logging.ERROR, logger="monitor.reload")
        rule_file.write_text(text, encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.failures == 1, timeout=15)
        assert_rejected(daemon.reload_status, caplog, f"{rule_file}:{line}: ", message)

        publish(inbox, "quokka-during", "a quokka crossed the road")
        await wait_until(lambda: "quokka-during.txt" in matched(daemon), timeout=15)
        assert matched(daemon)["quokka-during.txt"] == {"watch-old"}

        # The fix, saved as many editors save: a new file renamed over the old one.
        staged = rule_file.with_name(".watch.yaml.tmp")
        staged.write_text(NEW_RULE, encoding="utf-8")
        staged.replace(rule_file)
        await wait_until(lambda: daemon.reload_status.ok, timeout=15)
        status = daemon.reload_status
        assert (status.reloads, status.failures, status.problems) == (1, 1, ())

        publish(inbox, "wombat-after", "a wombat crossed the road")
        await wait_until(lambda: "wombat-after.txt" in matched(daemon), timeout=15)
        assert matched(daemon)["wombat-after.txt"] == {"watch-new"}


async def test_rejected_edit_shows_on_the_api_and_the_dashboard(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """After an invalid rule edit, /api/rules lists the rules still in use and the problem at
    its file and line, and the dashboard's rules page shows it; a valid edit clears both."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    http = f"http: {{listen: '127.0.0.1:{free_port()}', token: s3cret}}\n"
    config.write_text(config.read_text(encoding="utf-8") + http, encoding="utf-8")
    rule_file = config.parent / "rules" / "watch.yaml"
    text, line, message = INVALID_RULES["bad-query"]
    async with running(config, wait_until) as daemon:
        assert daemon.web is not None
        base = f"http://127.0.0.1:{daemon.web.port}"
        headers = {"Authorization": "Bearer s3cret"}
        rule_file.write_text(text, encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.failures == 1, timeout=15)
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(f"{base}/api/rules") as response:
                assert response.status == 200
                body = await response.json()
            assert [rule["id"] for rule in body["rules"]] == ["watch-old"]
            assert body["errors"] == [
                {"file": str(rule_file), "line": line, "message": body["errors"][0]["message"]}
            ]
            assert message in body["errors"][0]["message"]
            async with http.get(f"{base}/rules") as response:
                page = await response.text()
            assert "The rule files have errors" in page
            assert f"{rule_file}" in page
            assert await scraped(http, base) == {"failures": 1.0, "rules": 1.0}

            rule_file.write_text(NEW_RULE, encoding="utf-8")
            await wait_until(lambda: daemon.reload_status.ok, timeout=15)
            async with http.get(f"{base}/api/rules") as response:
                body = await response.json()
            assert ([rule["id"] for rule in body["rules"]], body["errors"]) == (["watch-new"], [])
            assert await scraped(http, base) == {"failures": 1.0, "rules": 1.0}


async def scraped(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The reload failures counted and the rules loaded, as /metrics shows them."""
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "monitor_rules_reload_failures_total":
                found["failures"] = sample.value
            elif sample.name == "monitor_rules_loaded":
                found["rules"] = sample.value
    return found


async def test_invalid_config_edit_keeps_running_config_until_fixed(
    tmp_path: Path, sink: Any, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """A config naming an unknown channel is rejected at its line and alerts keep going to the
    old channel; the fix (the channel defined) takes effect at once."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    inbox = config.parent / "inbox"
    original = config.read_text(encoding="utf-8")
    async with running(config, wait_until) as daemon:
        caplog.set_level(logging.ERROR, logger="monitor.reload")
        config.write_text(original.replace("notify: [desk]", "notify: [desk, pager]"))
        await wait_until(lambda: daemon.reload_status.failures == 1, timeout=15)
        assert_rejected(daemon.reload_status, caplog, f"{config}:7: ", "unknown channel 'pager'")

        publish(inbox, "during", "a quokka crossed the road")
        await wait_until(lambda: [r for r in sink.requests if r["path"] == "/alerts"], 15)

        pager = f"  - {{id: pager, url: 'json://{sink.url}/pager'}}\n"
        fixed = original.replace("notify: [desk]", pager + "notify: [desk, pager]")
        config.write_text(fixed, encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.ok, timeout=15)
        publish(inbox, "after", "another quokka crossed the road")
        await wait_until(lambda: [r for r in sink.requests if r["path"] == "/pager"], 15)
        await wait_until(lambda: len(sink.requests) == 3, timeout=15)
        assert sorted(r["path"] for r in sink.requests) == ["/alerts", "/alerts", "/pager"]


async def test_touch_or_identical_save_does_not_reload(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """Touching the config and rewriting a rule file with the same bytes is noticed, compared,
    and reloads nothing."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    rule_file = config.parent / "rules" / "watch.yaml"
    async with running(config, wait_until) as daemon:
        before = daemon.reload_status
        checks = daemon.reloader.checks
        os.utime(config)
        rule_file.write_text(rule_file.read_text(encoding="utf-8"), encoding="utf-8")
        await wait_until(lambda: daemon.reloader.checks > checks, timeout=15)
        assert daemon.reload_status is before
        assert before.attempted_at is None
        assert before.reloads == before.failures == 0


async def test_channel_change_restarts_delivery_on_the_new_channel(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """A channel's new URL is used for the next alert, without a restart."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    inbox = config.parent / "inbox"
    async with running(config, wait_until) as daemon:
        publish(inbox, "first", "a quokka crossed the road")
        await wait_until(lambda: [r for r in sink.requests if r["path"] == "/alerts"], timeout=15)
        old_outbox = daemon.outbox
        config.write_text(config_text(f"json://{sink.url}/moved"), encoding="utf-8")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.outbox is not old_outbox
        assert daemon.reload_status.restart_needed == ()
        publish(inbox, "second", "another quokka crossed the road")
        await wait_until(lambda: [r for r in sink.requests if r["path"] == "/moved"], timeout=15)
        assert [r["path"] for r in sink.requests] == ["/alerts", "/moved"]


@pytest.mark.slow
async def test_sighup_reloads_the_running_daemon(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """SIGHUP to `monitor run` reloads the config even though no file changed, and the daemon
    goes on running."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    log = config.parent / "daemon.log"
    process = await start_daemon(config, log)
    try:
        await wait_until(lambda: "running;" in log.read_text(errors="replace"), timeout=30)
        process.send_signal(signal.SIGHUP)
        await wait_until(lambda: "reloaded: 1 rules" in log.read_text(errors="replace"), 30)
        assert "reload requested (SIGHUP)" in log.read_text(errors="replace")
        assert process.returncode is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0, log.read_text(errors="replace")


# -- the pure parts --------------------------------------------------------------------------


def test_compare_sorts_changes_into_hot_outbox_and_restart() -> None:
    """Rules, routes and sources are hot, channels rebuild the outbox, http, the database and
    the parser pool's size need a restart."""
    base = settings_module.Settings(
        channels=({"id": "desk", "url": "console://"},),  # type: ignore[arg-type]
    )
    assert compare(base, base).outbox is False
    assert compare(base, base).restart == ()
    retention = base.model_copy(update={"retention": timedelta(days=90)})
    assert compare(base, retention).outbox is False
    assert compare(base, retention).restart == ()
    retry = base.model_copy(update={"retry_for": timedelta(hours=2)})
    assert compare(base, retry).outbox is True
    moved = settings_module.Settings.model_validate(
        {
            "channels": [{"id": "desk", "url": "console://"}],
            "sources": [{"id": "annex", "type": "folder", "path": "annex"}],
            "http": {"listen": "127.0.0.1:8081"},
        }
    )
    assert compare(base, moved).restart == ("http",)
    assert compare(base, moved).sources is True
    kept = running_settings(base, moved)
    assert kept.sources == moved.sources
    assert kept.http is None
    assert kept.channels == moved.channels
    fetching = settings_module.FetchSettings(parsers=2, concurrency=5)
    other = base.model_copy(update={"fetching": fetching, "database": "sqlite:///other.db"})
    assert compare(base, other).restart == ("database", "fetching.parsers")
    assert running_settings(base, other).fetching == fetching.model_copy(update={"parsers": None})
    assert running_settings(base, other).database == base.database


def test_public_url_applies_only_where_the_http_server_runs() -> None:
    """public_url is hot while the HTTP server runs; added with the server, both wait for a
    restart."""
    served = settings_module.Settings.model_validate({"http": {"listen": "127.0.0.1:8081"}})
    public = served.model_copy(update={"public_url": "https://example.org"})
    assert compare(served, public).restart == ()
    assert compare(served, public).sources is True
    assert running_settings(served, public).public_url == "https://example.org"
    bare = settings_module.Settings()
    assert compare(bare, public).restart == ("http", "public_url")
    assert running_settings(bare, public).public_url is None


def test_content_digest_changes_with_content_not_with_time(tmp_path: Path) -> None:
    """The digest ignores modification times and follows every rule file and template."""
    config = write_project(tmp_path, "console://")
    loaded = settings_module.load(config)
    first = content_digest(config, loaded)
    rule_file = config.parent / "rules" / "watch.yaml"
    os.utime(rule_file, (1, 1))
    assert content_digest(config, loaded) == first
    (config.parent / "rules" / "nested").mkdir()
    (config.parent / "rules" / "nested" / "more.yml").write_text(NEW_RULE, encoding="utf-8")
    second = content_digest(config, loaded)
    assert second != first
    (config.parent / "templates").mkdir()
    (config.parent / "templates" / "alert.text.j2").write_text("{{ title }}", encoding="utf-8")
    third = content_digest(config, loaded)
    assert third != second
    # A FIFO named like a rule file counts as unreadable, without blocking the watch on it.
    os.mkfifo(config.parent / "rules" / "pipe.yaml")
    assert content_digest(config, loaded) != third


def test_watch_roots_cover_config_rules_and_templates(tmp_path: Path) -> None:
    """The config's folder is watched for its own entries only; rules and templates wholly."""
    config = write_project(tmp_path, "console://")
    base = config.parent
    loaded = settings_module.load(config)
    roots = {(root.path, root.recursive): root for root in watch_roots(config, loaded)}
    assert set(roots) == {(base, False), (base / "rules", True)}
    top = roots[base, False]
    assert top.names == frozenset({config, base / "rules", base / "templates"})
    modified = watchfiles.Change.modified
    assert top.accepts(modified, str(config))
    assert not top.accepts(modified, str(base / "data"))
    assert top.accepts(modified, str(base / "..data"))  # a Kubernetes ConfigMap swap
    (base / "templates").mkdir()
    paths = {root.path for root in watch_roots(config, loaded)}
    assert base / "templates" in paths


def test_a_new_token_applies_at_once_and_other_http_changes_wait() -> None:
    """A rotated token is in force after the reload; a new address, or a removed token (the
    server may listen where one is required), waits for a restart with the old values."""
    served = settings_module.Settings.model_validate(
        {"http": {"listen": "127.0.0.1:8081", "token": "old-token"}}
    )
    rotated = settings_module.Settings.model_validate(
        {"http": {"listen": "127.0.0.1:8081", "token": "new-token"}}
    )
    assert compare(served, rotated).restart == ()
    assert running_settings(served, rotated).http == rotated.http
    moved = settings_module.Settings.model_validate(
        {"http": {"listen": "127.0.0.1:8082", "token": "new-token"}}
    )
    assert compare(served, moved).restart == ("http",)
    assert running_settings(served, moved).http == rotated.http
    opened = settings_module.Settings.model_validate({"http": {"listen": "127.0.0.1:8081"}})
    assert compare(served, opened).restart == ("http",)
    assert running_settings(served, opened).http == served.http


async def test_a_rotated_token_is_required_from_the_reload_on(
    tmp_path: Path, sink: Any, wait_until: WaitUntil
) -> None:
    """Editing http.token in the config of a running daemon makes the API refuse the old token
    and take the new one, with no restart."""
    config = write_project(tmp_path, f"json://{sink.url}/alerts")
    base_text = config.read_text(encoding="utf-8")
    listen = f"127.0.0.1:{free_port()}"
    config.write_text(base_text + f"http: {{listen: '{listen}', token: old-t0ken}}\n", "utf-8")
    async with running(config, wait_until) as daemon:
        url = f"http://{listen}/api/rules"

        async def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as answer:
                return answer.status

        assert (await status("old-t0ken"), await status("new-t0ken")) == (200, 401)
        config.write_text(base_text + f"http: {{listen: '{listen}', token: new-t0ken}}\n", "utf-8")
        await wait_until(lambda: daemon.reload_status.reloads == 1, timeout=15)
        assert daemon.reload_status.restart_needed == ()
        assert (await status("old-t0ken"), await status("new-t0ken")) == (401, 200)
