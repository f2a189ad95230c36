"""How feed URLs are shown: every secret they carry masked, the rest as written."""

from __future__ import annotations

import pytest

from monitor.sources.health import display_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("https://example.org/feed.xml", "https://example.org/feed.xml", []),
        ("https://bob:pw1@example.org/rss", "https://bob:***@example.org/rss", ["pw1"]),
        (
            "https://example.org:8443/rss?token=t0k3n&page=2",
            "https://example.org:8443/rss?token=***&page=2",
            ["t0k3n"],
        ),
        (
            "https://u:p@example.org/x?api_key=k1&Private_Token=k2&q=news",
            "https://u:***@example.org/x?api_key=***&Private_Token=***&q=news",
            ["p", "k1", "k2"],
        ),
        (
            "https://example.org/x?sig=abc&expires=9",
            "https://example.org/x?sig=***&expires=9",
            ["abc"],
        ),
        (
            "https://example.org/x?monkey=1&keyword=kz",
            "https://example.org/x?monkey=1&keyword=kz",
            [],
        ),
        ("https://example.org/x?token=", "https://example.org/x?token=", []),
        # A token as the user, with no password (GitHub's private feeds are written so).
        ("https://ghp_t0k3n@example.org:9/x", "https://***@example.org:9/x", ["ghp_t0k3n"]),
    ],
)
def test_feed_urls_are_shown_with_their_secrets_masked(
    url: str, shown: str, secrets: list[str]
) -> None:
    """A password and the values of credential-like query parameters are masked; other
    parameters (even ones containing "key" in a longer word) are shown as written."""
    assert display_url(url) == shown
    assert url_secrets(url) == secrets
