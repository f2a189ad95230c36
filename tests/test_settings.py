"""The daemon config: validation with file:line errors, environment interpolation, paths."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import settings
from monitor.durations import MAX_DURATION, parse_duration
from monitor.errors import ConfigError

HINT = "(use sqlite:///path or postgresql+psycopg://...)"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "monitor.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings.load(path, environ or {})
    return [str(p) for p in caught.value.problems]


def test_bundled_config_loads_with_paths_resolved_against_its_folder() -> None:
    """The shipped config is valid; its relative paths point at the repository's folders."""
    root = Path(__file__).resolve().parent.parent
    loaded = settings.load(root / "config" / "monitor.yaml", {})
    assert loaded.rules == root / "rules"
    assert loaded.database == f"sqlite:///{root / 'data' / 'monitor.db'}"
    folder = loaded.sources[0]
    assert isinstance(folder, settings.FolderSourceSettings)
    assert folder.path == root / "seeds"
    assert loaded.notify == ("console",)


def test_unknown_key_is_reported_with_line_and_suggestion(tmp_path: Path) -> None:
    """A misspelt key names the file, its line and the key it probably meant."""
    path = write(tmp_path, "rules: r\nsourcse: []\n")
    assert problems(path) == [f"{path}:2: unknown key 'sourcse' (did you mean 'sources'?)"]


def test_missing_environment_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    """${VAR} without a default and without the variable names the variable and the line."""
    path = write(
        tmp_path,
        "channels:\n  - id: mail\n    url: mailto://u:${SMTP_PASSWORD}@host\nnotify: [mail]\n",
    )
    assert problems(path) == [f"{path}:3: environment variable SMTP_PASSWORD is not set"]


def test_environment_interpolation_and_defaults() -> None:
    """${VAR} takes the variable, ${VAR:-x} falls back to x when unset or empty, $$ is a dollar."""
    env = {"A": "1", "EMPTY": ""}
    assert settings.interpolate("${A}/${B:-two}/${EMPTY:-three}/$$x", env) == "1/two/three/$x"


def test_wrong_types_unknown_channel_and_duplicate_ids_are_all_reported(tmp_path: Path) -> None:
    """Every problem in the file is reported at once, each at its own line."""
    path = write(
        tmp_path,
        "sources:\n"
        "  - {id: a, type: folder, path: x, interval: soon}\n"
        "  - {id: a, type: folder, path: y}\n"
        "  - {id: b, type: rss, url: x}\n"
        "notify: [nowhere]\n",
    )
    found = problems(path)
    assert len(found) == 2  # pydantic stops at the model level: types first, cross-checks after
    assert found[0].startswith(f"{path}:2: sources.0.folder.interval:")
    assert found[1].startswith(f"{path}:4: sources.2:")
    fixed = write(
        tmp_path,
        "sources:\n"
        "  - {id: a, type: folder, path: x}\n"
        "  - {id: a, type: folder, path: y}\n"
        "notify: [nowhere]\n",
    )
    assert problems(fixed) == [
        f"{fixed}:3: duplicate source id 'a'",
        f"{fixed}:4: unknown channel 'nowhere'",
    ]


def test_feed_sources_are_accepted_and_only_http_urls(tmp_path: Path) -> None:
    """Feed sources validate now; a file: URL is refused before anything fetches it."""
    good = write(
        tmp_path,
        "sources:\n  - {id: f, type: feed, url: 'https://example.org/rss', interval: 15m}\n",
    )
    assert settings.load(good, {}).sources[0].id == "f"
    bad = write(tmp_path, "sources:\n  - {id: f, type: feed, url: 'file:///etc/passwd'}\n")
    assert "http:// or https://" in problems(bad)[0]


def test_yaml_syntax_error_and_duplicate_keys(tmp_path: Path) -> None:
    """Broken YAML and a key given twice are reported with their lines."""
    broken = write(tmp_path, "rules: [a\n")
    assert problems(broken)[0].startswith(f"{broken}:2: YAML syntax error")
    twice = write(tmp_path, "rules: a\nrules: b\n")
    assert problems(twice) == [f"{twice}:2: duplicate key 'rules' (first at line 1)"]


def test_python_tags_and_alias_bombs_are_refused(tmp_path: Path) -> None:
    """Only safe YAML is read; nested aliases that explode are stopped, not expanded."""
    tagged = write(tmp_path, "rules: !!python/object/apply:os.system ['true']\n")
    assert "YAML" in problems(tagged)[0]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    assert "alias bomb" in problems(write(tmp_path, bomb))[0]


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """--config beats $MONITOR_CONFIG, which beats config/monitor.yaml."""
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    assert settings.config_path(None) == Path("config/monitor.yaml")
    monkeypatch.setenv("MONITOR_CONFIG", "/etc/monitor.yaml")
    assert settings.config_path(None) == Path("/etc/monitor.yaml")
    assert settings.config_path("x.yaml") == Path("x.yaml")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("mysql://x/y", f"unsupported database 'mysql' {HINT}", id="mysql"),
        pytest.param("postgres+nodrv://x/y", f"unsupported database 'postgres' {HINT}", id="alias"),
        pytest.param(
            "postgresql+nodrv://x/y", f"unknown postgresql driver 'nodrv' {HINT}", id="driver"
        ),
        pytest.param("postgresql://u:s3cretpw@h:notaport/db", "invalid port in URL", id="port"),
        pytest.param("postgresql://u:s3cretpw@h:70000/db", "invalid port in URL", id="range"),
        pytest.param("u:s3cretpw@h/db", f"not a database URL {HINT}", id="no-scheme"),
        pytest.param(
            "postgresql+asyncpg://u:s3cretpw@h/db",
            f"postgresql driver 'asyncpg' is asyncio-only {HINT}",
            id="async",
        ),
        pytest.param(
            "sqlite+pysqlcipher://:s3cretpw@/x.db",
            f"sqlite driver 'pysqlcipher' is not installed {HINT}",
            id="missing-driver",
        ),
    ],
)
def test_unusable_database_url_is_a_problem_at_its_line(
    tmp_path: Path, url: str, reason: str
) -> None:
    """A database URL the store could not open is a problem at its line that never shows the
    password, even when the URL comes from the environment."""
    path = write(tmp_path, "rules: r\ndatabase: ${DATABASE_URL}\n")
    assert problems(path, {"DATABASE_URL": url}) == [f"{path}:2: database: {reason}"]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite:////var/lib/monitor/monitor.db",
        "sqlite:///file:monitor.db?mode=ro&uri=true",
        "postgresql://monitor@db.example.org/monitor",
        "postgresql+psycopg://u:pw@[::1]:5432/monitor",
    ],
)
def test_sqlite_and_postgresql_urls_are_accepted_as_written(tmp_path: Path, url: str) -> None:
    """SQLite and PostgreSQL URLs with an installed synchronous driver load unchanged."""
    path = write(tmp_path, f"database: '{url}'\n")
    assert settings.load(path, {}).database == url


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_relative_sqlite_path_resolves_against_the_config_folder(
    tmp_path: Path, scheme: str
) -> None:
    """A relative SQLite path, with or without a driver name, is under the config's folder."""
    path = write(tmp_path, f"database: '{scheme}:///../data/monitor.db'\n")
    expected = f"{scheme}:///{tmp_path / 'data' / 'monitor.db'}"
    assert settings.load(path, {}).database == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1.5d", 129_600), ("1w", 604_800), (30, 30)],
)
def test_durations_parse(text: str | int, seconds: int) -> None:
    """Durations are written with a unit (s, m, h, d, w) or as a number of seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("999999999999d", "longer than 3650d", id="huge-days"),
        pytest.param("9" * 400, "longer than 3650d", id="float-infinity"),
        pytest.param(10**400, "longer than 3650d", id="huge-int"),
        pytest.param(float("inf"), "longer than 3650d", id="inf"),
        pytest.param(float("nan"), "not a duration", id="nan"),
        pytest.param(-5, "cannot be negative", id="negative"),
        pytest.param(timedelta(seconds=-1), "cannot be negative", id="negative-timedelta"),
        pytest.param(True, "not a duration", id="bool"),
    ],
)
def test_out_of_range_durations_raise_value_error(value: Any, reason: str) -> None:
    """Negative, absurdly long and non-numeric durations raise ValueError, never OverflowError."""
    with pytest.raises(ValueError, match=reason):
        parse_duration(value)


def test_longest_duration_is_accepted() -> None:
    """MAX_DURATION itself is a valid duration; one second more is not."""
    assert parse_duration("3650d") == MAX_DURATION
    with pytest.raises(ValueError, match="longer than 3650d"):
        parse_duration(MAX_DURATION.total_seconds() + 1)


def test_bad_durations_in_config_are_located_problems(tmp_path: Path) -> None:
    """An overflowing, zero or negative interval or retry window is a problem at its line."""
    path = write(
        tmp_path,
        "sources:\n"
        "  - {id: a, type: folder, path: x, interval: 999999999999d}\n"
        "  - {id: b, type: folder, path: y, interval: 0s}\n"
        "  - {id: c, type: feed, url: 'https://example.org/rss', interval: 0}\n"
        "retry_for: -60\n",
    )
    assert problems(path) == [
        f"{path}:2: sources.0.folder.interval: a duration cannot be longer than 3650d",
        f"{path}:3: sources.1.folder.interval: must be longer than 0s",
        f"{path}:4: sources.2.feed.interval: must be longer than 0s",
        f"{path}:5: retry_for: a duration cannot be negative",
    ]


def test_zero_retry_window_is_refused(tmp_path: Path) -> None:
    """retry_for: 0 would mark every failed delivery dead at once, so it is refused."""
    path = write(tmp_path, "retry_for: 0s\n")
    assert problems(path) == [f"{path}:1: retry_for: must be longer than 0s"]


def test_alert_policy_settings_are_checked_at_their_lines(tmp_path: Path) -> None:
    """A bad digest schedule, quiet hours, time zone or route channel is a located problem."""
    path = write(
        tmp_path,
        "channels:\n"
        "  - {id: slack, url: 'console://', digest: hourly}\n"
        "  - {id: tg, url: 'console://', quiet_hours: '22:00', timezone: Mars/Olympus}\n",
    )
    found = problems(path)
    assert any(p.startswith(f"{path}:2:") and "not a digest schedule" in p for p in found), found
    assert any(p.startswith(f"{path}:3:") and "span of hours" in p for p in found), found
    assert any(p.startswith(f"{path}:3:") and "'Mars/Olympus'" in p for p in found), found
    routed = write(
        tmp_path,
        "channels:\n"
        "  - {id: tg, url: 'console://'}\n"
        "routes:\n"
        "  - {severity: [critical], notify: [tg, nowhere]}\n",
    )
    assert problems(routed) == [f"{routed}:4: unknown channel 'nowhere'"]


def test_alert_policy_settings_build_the_policy(tmp_path: Path) -> None:
    """Routes, digests, quiet hours and zones of the config become the pipeline's policy."""
    path = write(
        tmp_path,
        "channels:\n"
        "  - {id: slack, url: 'console://', digest: daily 08:00, timezone: Europe/Berlin}\n"
        "  - {id: tg, url: 'console://', quiet_hours: '22:00-07:00', burst: 5}\n"
        "notify: [slack]\n"
        "sources:\n"
        "  - {id: wire, type: feed, url: 'https://example.org/rss', tags: [wire]}\n"
        "routes:\n"
        "  - {min_severity: high, source_tags: [wire], notify: [tg], continue: true}\n"
        "  - {severity: [critical], notify: [slack]}\n",
    )
    policy = settings.load(path, {}).policy()
    assert policy.default == ("slack",)
    assert [route.notify for route in policy.routes] == [("tg",), ("slack",)]
    assert policy.routes[0].carry_on
    assert policy.source_tags["wire"] == ("wire",)
    assert str(policy.channels["slack"].digest) == "daily 08:00"
    assert policy.channels["tg"].burst == 5
    assert policy.channels["tg"].quiet_hours is not None


def test_story_folding_is_configurable_and_can_be_turned_off(tmp_path: Path) -> None:
    """stories: sets the window and distance; stories: null turns folding off."""
    tuned = write(tmp_path, "stories: {window: 12h, distance: 4}\n")
    policy = settings.load(tuned, {}).policy()
    assert (policy.story_window, policy.story_distance) == (timedelta(hours=12), 4)
    off = write(tmp_path, "stories: null\n")
    assert settings.load(off, {}).policy().story_window is None
    assert settings.load(write(tmp_path, "{}\n"), {}).policy().story_window == timedelta(hours=48)


def test_a_feed_lease_must_outlast_a_poll(tmp_path: Path) -> None:
    """fetching.lease defaults to 2 minutes; one no longer than connect_timeout + timeout +
    parse_timeout is a problem at the fetching block, saying what it must exceed."""
    assert settings.load(write(tmp_path, "{}\n"), {}).fetching.lease == timedelta(minutes=2)
    short = write(tmp_path, "fetching:\n  timeout: 30s\n  lease: 50s\n")
    assert problems(short) == [
        f"{short}:1: fetching: lease (50s) must be longer than connect_timeout + timeout + "
        "parse_timeout (50s): a feed's claim must outlast a poll"
    ]
    tuned = write(
        tmp_path, "fetching: {timeout: 2s, connect_timeout: 1s, parse_timeout: 2s, lease: 6s}\n"
    )
    assert settings.load(tuned, {}).fetching.lease == timedelta(seconds=6)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.org:99999/feed", "invalid port"),
        ("https://example.org:abc/feed", "invalid port"),
        ("https://exa mple.org/feed", "space in its host"),
    ],
)
def test_a_feed_url_the_fetcher_could_never_use_is_refused_by_check(
    tmp_path: Path, url: str, reason: str
) -> None:
    """A bad port or a space in the host is a problem at load time, with its line, not a fetch
    error found later."""
    config = write(
        tmp_path,
        "database: sqlite:///x.db\nrules: rules\nsources:\n"
        f"  - {{id: f, type: feed, url: '{url}'}}\n",
    )
    (config.parent / "rules").mkdir()
    found = problems(config)
    assert len(found) == 1
    assert ":4:" in found[0]
    assert reason in found[0]
