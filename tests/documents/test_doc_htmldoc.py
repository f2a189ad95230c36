"""HTML pages: title, readable body and the page's metadata."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.documents.htmldoc import parse_html
from monitor.errors import DocumentError


def test_page_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """A real-looking page gives its title, article text and metadata, without the chrome."""
    [article] = parse_html(fixture_bytes("page.html"))
    assert article.title == "Almaty airport reopens"
    assert article.body == (
        "The airport reopened on Thursday & the first flights landed at noon.\n\n"
        "Passengers were checked\ntwice at the gate.\n\n"
        "Aeroflot resumed flights\nAir Astana followed"
    )
    assert article.summary == "Flights resume after a week of unrest."
    assert article.url == "https://news.example.kz/airport-reopens"
    assert article.author == "Ivan Petrov"
    assert article.published == datetime(2022, 1, 13, 2, tzinfo=UTC)
    assert article.language == "ru"
    for chrome in ("Home", "Most read", "Search", "Copyright", "tracking", "color"):
        assert chrome not in article.body


@pytest.mark.parametrize(
    ("markup", "title", "body"),
    [
        pytest.param("<h1>Only h1</h1><p>Text</p>", "Only h1", "Text", id="h1-not-repeated"),
        pytest.param("<title>Site | Story</title><h1>Story</h1>", "Site | Story", "Story"),
        pytest.param("<p>First line</p><p>Second</p>", "First line", "Second", id="no-title"),
        pytest.param("<title>Only a title</title>", "Only a title", "", id="no-text"),
    ],
)
def test_title_and_body(markup: str, title: str, body: str) -> None:
    """The title comes from <title>, <h1> or the first line, and is not repeated in the body."""
    [article] = parse_html(markup.encode())
    assert (article.title, article.body) == (title, body)


@pytest.mark.parametrize(
    ("head", "url"),
    [
        pytest.param(
            '<meta property="og:url" content="https://x.example/og">', "https://x.example/og"
        ),
        pytest.param('<link rel="canonical" href="/relative">', None, id="relative-canonical"),
        pytest.param('<link rel="Canonical" href="javascript:alert(1)">', None, id="javascript"),
        pytest.param(
            '<link rel="canonical" href="http://x.example/c">'
            '<meta property="og:url" content="https://x.example/og">',
            "http://x.example/c",
            id="canonical-wins",
        ),
    ],
)
def test_url_is_http_only(head: str, url: str | None) -> None:
    """The URL is the canonical link, else og:url, and only when it is absolute http(s)."""
    [article] = parse_html(f"<html><head>{head}</head><body><p>x</p></body></html>".encode())
    assert article.url == url


def test_encoding_is_detected() -> None:
    """A page saved in cp1251 without a charset declaration still reads as Russian."""
    markup = "<title>Новости</title><p>Президент Токаев приказал открывать огонь.</p>"
    [article] = parse_html(markup.encode("cp1251"))
    assert article.title == "Новости"
    assert article.body == "Президент Токаев приказал открывать огонь."


@pytest.mark.parametrize("markup", [b"", b"<html><head><script>x()</script></head></html>"])
def test_empty_page_is_an_error(markup: bytes) -> None:
    """A page with neither a title nor readable text raises DocumentError("empty document")."""
    with pytest.raises(DocumentError, match=r"^empty document$"):
        parse_html(markup)
