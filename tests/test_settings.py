"""The daemon config: validation with file:line errors, environment interpolation, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import settings
from monitor.errors import ConfigError


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
