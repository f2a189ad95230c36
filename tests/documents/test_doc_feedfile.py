"""Feed files (RSS, Atom) parsed from bytes, with hostile input refused.

Each behaviour holds on both paths: the fast one (which declines what it does not model) and
feedparser's. test_doc_fastfeed compares the two on many more documents.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

import pytest

from monitor.documents.feedfile import parse_feed
from monitor.errors import DocumentError


@pytest.fixture(params=[True, False], ids=["fast-path", "feedparser"])
def fast(request: pytest.FixtureRequest) -> bool:
    """Whether parse_feed may take the fast path."""
    return bool(request.param)


def test_rss2_fixture(fixture_bytes: Callable[[str], bytes], fast: bool) -> None:
    """An RSS 2.0 item gives body from content:encoded, summary from description, and metadata."""
    first, _ = parse_feed(fixture_bytes("rss2.rss"), fast=fast)
    assert first.title == "Fuel prices capped for 180 days"
    assert first.body == (
        "The government capped LPG prices for 180 days.\n\nProtesters said it was not enough."
    )
    assert first.summary == "The government capped LPG prices."
    assert first.url == "https://steppe.example.com/fuel-cap"
    assert first.guid == "steppe-fuel-001"
    assert first.author == "Aigerim S."
    assert first.published == datetime(2022, 1, 6, 6, tzinfo=UTC)
    assert first.tags == ("Economy", "Energy")
    assert first.language == "en-us"
    assert "alert" not in first.body


def test_rss2_item_without_content(fixture_bytes: Callable[[str], bytes], fast: bool) -> None:
    """An item with only a description keeps it as summary with an empty body; bad links and
    dates before 1900 are left out."""
    _, second = parse_feed(fixture_bytes("rss2.rss"), fast=fast)
    assert (second.title, second.summary, second.body) == (
        "Summary-only item",
        "Only a description here.",
        "",
    )
    assert second.url is None
    assert second.published is None


def test_atom_fixture(fixture_bytes: Callable[[str], bytes], fast: bool) -> None:
    """Atom entries give HTML titles as text, and no summary that only repeats the content."""
    first, second = parse_feed(fixture_bytes("atom.atom"), fast=fast)
    assert first.title == "Le couvre-feu prolongé"
    assert first.body == "Le couvre-feu est prolongé.\n\nLes banques rouvrent."
    assert first.summary == ""
    assert first.url == "https://depeches.example.fr/couvre-feu"
    assert first.guid == "urn:uuid:5b1c9a3e-0001"
    assert first.author == "Claire Dupont"
    assert first.published == datetime(2022, 1, 8, 8, tzinfo=UTC)
    assert first.tags == ("Kazakhstan",)
    assert first.language == "fr"
    assert (second.title, second.summary, second.body) == (
        "Texte brut",
        "Un résumé seul.",
        "Un contenu en texte brut.",
    )
    assert second.url is None  # the entry's id is not a web link


def test_truncated_feed_keeps_recovered_entries(
    fixture_bytes: Callable[[str], bytes], fast: bool
) -> None:
    """A feed cut off mid-item gives the complete entries feedparser recovered, and no stub."""
    [article] = parse_feed(fixture_bytes("truncated_item.xml"), fast=fast)
    assert (article.title, article.summary) == ("Complete item", "This item is whole.")


def test_well_formed_feed_without_entries(fast: bool) -> None:
    """A valid feed with no items is not an error: it has no articles."""
    document = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    assert parse_feed(document, fast=fast) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("html_page.xml", "not a feed: no RSS, RDF or Atom root element", id="html"),
        pytest.param(
            "truncated_channel.xml",
            "malformed feed with no entries: <unknown>:6:4: unclosed token",
            id="truncated",
        ),
        pytest.param(
            "billion_laughs.xml",
            "feed declares XML entities (DOCTYPE with ENTITY), refused",
            id="billion-laughs",
        ),
        pytest.param(
            "quadratic_utf16.rss",
            "feed declares XML entities (DOCTYPE with ENTITY), refused",
            id="quadratic-blowup-utf16",
        ),
        pytest.param("empty.txt", "not a feed: no RSS, RDF or Atom root element", id="empty"),
    ],
)
def test_refused_documents(
    fixture_bytes: Callable[[str], bytes], name: str, reason: str, fast: bool
) -> None:
    """Non-feeds, unrecoverable feeds and entity declarations raise DocumentError with a reason."""
    with pytest.raises(DocumentError) as raised:
        parse_feed(fixture_bytes(name), fast=fast)
    assert str(raised.value).startswith(reason)


def test_bytes_naming_a_file_are_not_read(tmp_path: Path, fast: bool) -> None:
    """Bytes that spell a local path are parsed as a document, never opened as a file."""
    feed = tmp_path / "feed.xml"
    feed.write_bytes(
        b'<rss version="2.0"><channel><item><title>secret</title></item></channel></rss>'
    )
    with pytest.raises(DocumentError, match=r"^not a feed"):
        parse_feed(str(feed).encode(), fast=fast)


def test_crafted_entry_html_takes_linear_time(fast: bool) -> None:
    """Entry HTML built to make feedparser's sanitizer quadratic parses in well under a second."""
    content = b"<p>kept</p>" + b"<!--" * 80_000  # took 16 s with feedparser's sanitizer on
    document = b'<rss version="2.0"><channel><item><title>t</title><description><![CDATA['
    document += content + b"]]></description></item></channel></rss>"
    start = perf_counter()
    [article] = parse_feed(document, fast=fast)
    assert perf_counter() - start < 5.0
    assert article.summary == "kept"


FEED_URL = "https://news.example.com/feeds/rss.xml"

RELATIVE_LINKS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
  <channel>
    <title>Relative links</title>
    <item><title>Root-relative</title><link>/news/1</link></item>
    <item xml:base="/moved/"><title>Under a relative xml:base</title><link>2</link></item>
    <item xml:base="https://mirror.example.org/archive/"><title>Under xml:base</title>
      <link>2022/3</link></item>
    <item><title>Absolute</title><link>https://elsewhere.example.net/4</link></item>
  </channel>
</rss>"""


def test_relative_links_resolve_against_the_feed_url(fast: bool) -> None:
    """A relative link resolves against xml:base where there is one (itself resolved against the
    feed's URL), else against the feed's URL."""
    articles = parse_feed(RELATIVE_LINKS, FEED_URL, fast=fast)
    assert [article.url for article in articles] == [
        "https://news.example.com/news/1",
        "https://news.example.com/moved/2",
        "https://mirror.example.org/archive/2022/3",
        "https://elsewhere.example.net/4",
    ]


def test_relative_links_without_a_base_are_left_out(fast: bool) -> None:
    """Without the feed's URL, a link that nothing makes absolute is no web link."""
    articles = parse_feed(RELATIVE_LINKS, fast=fast)
    assert [article.url for article in articles] == [
        None,
        None,
        "https://mirror.example.org/archive/2022/3",
        "https://elsewhere.example.net/4",
    ]


def test_the_feed_url_changes_nothing_else(fast: bool) -> None:
    """feedparser is told the URL as an HTTP header, which must not make it read the bytes as
    ISO-8859-1 (an author name would keep the mojibake) or call a feed without entries malformed.
    """
    document = """<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>t</title>
        <author><name>José</name></author><category term="café"/></entry></feed>""".encode()
    [article] = parse_feed(document, FEED_URL, fast=fast)
    assert (article.author, article.tags) == ("José", ("café",))
    quiet = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    assert parse_feed(quiet, FEED_URL, fast=fast) == []


def test_a_reference_to_a_code_point_no_text_holds_costs_only_that_character(fast: bool) -> None:
    """A title with &#xD800; (a lone surrogate), &#0; or a reference past U+10FFFF is read with
    U+FFFD in its place, by either parser; the feed's other entries are not lost with it."""
    data = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
        b"<item><title>bad &#xD800; &#55296; &#0; &#x110000; &#8217; title</title>"
        b"<link>http://e.com/1</link></item>"
        b"<item><title>good</title><link>http://e.com/2</link></item></channel></rss>"
    )
    titles = [article.title for article in parse_feed(data, fast=fast)]
    assert titles == ["bad \ufffd \ufffd \ufffd \ufffd \u2019 title", "good"]
