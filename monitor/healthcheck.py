"""``python -m monitor.healthcheck [HOST:PORT]``: exit 0 when the daemon's ``/healthz`` answers
200 within a few seconds, else 1 with the reason on stderr.

The container's HEALTHCHECK runs it: the image has no curl, and this needs only the standard
library (it imports nothing else of monitor, so it starts in milliseconds). The address is the
argument, else ``$MONITOR_HTTP_LISTEN`` (what the bundled config listens on), else
127.0.0.1:8080; a wildcard host (0.0.0.0, ::) is checked on loopback. Proxies from the
environment are ignored: the daemon is local.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Sequence

PATH = "/healthz"
DEFAULT_LISTEN = "127.0.0.1:8080"
ENV_LISTEN = "MONITOR_HTTP_LISTEN"
TIMEOUT = 3.0
"""Seconds; less than the HEALTHCHECK's own timeout."""


def health_url(listen: str) -> str:
    """The /healthz URL of a daemon listening on ``listen`` (host:port)."""
    host, _, port = listen.strip().rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 (a wildcard to connect to, not to bind)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{PATH}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    listen = args[0] if args else os.environ.get(ENV_LISTEN) or DEFAULT_LISTEN
    url = health_url(listen)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            status = response.status
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        sys.stderr.write(f"unhealthy: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"unhealthy: {url}: HTTP {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
