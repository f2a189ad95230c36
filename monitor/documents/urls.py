"""Links found in documents -> a URL a person can open, or None.

Only absolute http and https URLs with a host are kept: an alert links to them, and a
``javascript:``, ``file:`` or relative link would be useless there or worse.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def web_url(value: object) -> str | None:
    """``value`` stripped when it is an absolute http(s) URL with a host, else None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if any(char.isspace() for char in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        # urlsplit rejects malformed IPv6 hosts and ports with ValueError.
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        return None
    return url
