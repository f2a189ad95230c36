"""The parser pool: real worker processes, their time and memory limits, and recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.sources.parsing import ParseError, ParserPool, bug_report, extract_page, parse_body
from monitor.store.repo import Incoming
from tests.sources.conftest import item, rss

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
GOOD = rss("Desk", [item(1), item(2)])


@pytest.fixture
async def pool() -> AsyncIterator[ParserPool]:
    parsers = ParserPool(1, timeout=5, memory_limit=100 * 1024 * 1024)
    yield parsers
    parsers.close()


async def test_a_feed_is_parsed_in_a_worker(pool: ParserPool) -> None:
    """The worker returns the same articles as parsing in this process."""
    parsed = await pool.parse(GOOD)
    assert parsed.articles == parse_body(GOOD).articles
    assert [a.title for a in parsed.articles] == ["Story 1", "Story 2"]


def test_a_parsed_feed_carries_each_articles_identity() -> None:
    """The content hash and canonical URL a parse gives with each article are the ones the
    pipeline would compute from the article, and the cap on items keeps them in step."""
    parsed = parse_body(rss("Desk", [item(n) for n in range(1, 6)]), max_items=3)
    assert parsed.truncated == 2
    assert parsed.identities == tuple(
        (incoming.content_hash, incoming.url) for incoming in map(Incoming.of, parsed.articles)
    )
    assert len(parsed.identities) == 3


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("page.html", "not_a_feed", "not a feed"),
        ("billion_laughs.xml", "parse_error", "declares XML entities"),
        ("quadratic_utf16.rss", "parse_error", "declares XML entities"),
    ],
)
async def test_hostile_documents_fail_with_a_reason(
    pool: ParserPool, name: str, reason: str, message: str
) -> None:
    """An HTML page is "not a feed", not zero items; entity attacks are refused."""
    with pytest.raises(ParseError) as caught:
        await pool.parse((FIXTURES / name).read_bytes())
    assert caught.value.reason == reason
    assert message in str(caught.value)


async def test_a_json_document_that_is_no_feed_is_not_a_feed(pool: ParserPool) -> None:
    """JSON from an API is refused as "not a feed"; a JSON Feed is read."""
    with pytest.raises(ParseError, match="not a feed"):
        await pool.parse(b'{"status": "ok", "items": 3}')
    feed = (FIXTURES / "feed_1_1.json").read_bytes()
    assert (await pool.parse(feed)).articles


async def test_a_parse_over_time_is_killed_and_the_pool_recovers() -> None:
    """A document that takes longer than the limit fails with parse_timeout; its worker is
    replaced and the next feed parses normally."""
    parsers = ParserPool(1, timeout=0.2)
    try:
        huge = rss("Big", [item(n, "word " * 2000) for n in range(3000)])
        with pytest.raises(ParseError) as caught:
            await parsers.parse(huge)
        assert caught.value.reason == "parse_timeout"
        assert len((await parsers.parse(GOOD)).articles) == 2
    finally:
        parsers.close()


async def test_a_parse_over_memory_fails_alone_and_the_pool_recovers(pool: ParserPool) -> None:
    """A document whose parse needs more memory than the limit fails with parse_memory, and the
    next feed parses normally."""
    big = rss("Big", [item(1, "x" * (60 * 1024 * 1024))])
    with pytest.raises(ParseError) as caught:
        await pool.parse(big)
    assert caught.value.reason == "parse_memory"
    assert len((await pool.parse(GOOD)).articles) == 2


async def test_entries_beyond_the_cap_are_dropped_and_counted() -> None:
    """A feed of 30 entries read with max_items=10 keeps the first 10 and says 20 were dropped."""
    parsers = ParserPool(1, max_items=10)
    try:
        parsed = await parsers.parse(rss("Many", [item(n) for n in range(30)]))
    finally:
        parsers.close()
    assert len(parsed.articles) == 10
    assert parsed.truncated == 20


def test_extract_page_keeps_the_article_and_drops_the_chrome() -> None:
    """The main text comes out in paragraphs; navigation and footer do not."""
    page = (
        b"<html><body><nav>Home | World</nav><article><h1>Title</h1>"
        b"<p>First paragraph of the story, long enough to count as text for extraction.</p>"
        b"<p>Second paragraph of the story with further details about what happened.</p>"
        b"</article><footer>Copyright</footer></body></html>"
    )
    text = extract_page(page)
    assert text.startswith("Title\n\nFirst paragraph")
    assert "Second paragraph" in text
    assert "Home" not in text
    assert "Copyright" not in text


def test_a_parser_bug_is_reported_with_where_it_was_raised() -> None:
    """A worker sends a parser's unexpected exception back as one line that says where it was
    raised, since its traceback stays in the worker."""

    def scalar(value: str) -> int:
        return int(value)

    try:
        scalar("x")
    except ValueError as exc:
        report = bug_report(exc)
    assert report.startswith("parser failed: ValueError: invalid literal for int()")
    assert report.endswith(" in scalar)")
    assert "(at test_parsing.py:" in report
