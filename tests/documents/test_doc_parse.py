"""parse_document: the suffix picks the format, and any bytes give articles or DocumentError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.documents import MAX_FIELD_CHARS, SUPPORTED_SUFFIXES, parse_document
from monitor.errors import DocumentError
from monitor.models import Article

# Pieces of every supported syntax, so that generated documents reach past the first parse error.
FRAGMENTS = [
    b'<?xml version="1.0"?>', b'<rss version="2.0">', b"<channel>", b"<item>", b"<title>",
    b"</title>", b"<description>", b"&lt;p&gt;", b"<![CDATA[", b"]]>", b"<!DOCTYPE x [",
    b"<!ENTITY", b"<![foo", b'<feed xmlns="http://www.w3.org/2005/Atom">', b"<entry>",
    b'<content type="html">', b"<pubDate>", b"Fri, 31 Dec 9999 23:59:59 -1200",
    b"0001-01-01T00:00:00+14:00", b"<updated>", b"</updated>", b"{", b"}", b"[", b"]", b",",
    b'"title":', b'"body":', b'"version": "https://jsonfeed.org/version/1.1"', b'"items":',
    b'"date_published":', b'"9999-12-31T23:59:59-12:00"', b'"\\ud800"', b'"\\u0000"',
    b"---\n", b"title: ", b"date: ", b"tags: ", b"# ", b"=====\n", b"[a](b)", b"**",
    b"Subject: ", b"From: ", b"Date: ", b"Content-Type: multipart/mixed; boundary=b\n",
    b"--b\n", b"Content-Type: text/html; charset=bogus\n", b"Content-Transfer-Encoding: base64\n",
    b"=?utf-8?q?x?=", b"\r\n", b"\n", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc0\xe0\xf0",
    b"<script>", b"<head>", b"<body>", b"<h1>", b"<meta name=author content=x>",
    b"<html lang=en>", b"<link rel=canonical href='http://[::1'>",
]  # fmt: skip
DOCUMENTS = st.one_of(
    st.binary(),
    st.lists(
        st.one_of(
            st.sampled_from(FRAGMENTS), st.binary(max_size=16), st.text(max_size=8).map(str.encode)
        ),
        max_size=40,
    ).map(b"".join),
)


@pytest.mark.parametrize(
    ("name", "count", "title"),
    [
        ("russian_cp1251.txt", 1, "Президент Токаев приказал открывать огонь без предупреждения"),
        ("french_latin1.txt", 1, "Le président défend la réforme des retraites"),
        ("weather_utf16.txt", 1, "Storm hits the coast"),
        ("front_matter.md", 1, "Protests spread across Kazakhstan"),
        ("setext.md", 1, "Kazakhstan lifts the state of emergency"),
        ("page.html", 1, "Almaty airport reopens"),
        ("multipart.eml", 1, "Curfew extended in Almaty — update"),
        ("html_only.eml", 1, "Weekly bulletin"),
        ("feed_1_1.json", 2, "Tokayev orders troops to fire without warning"),
        ("article.json", 1, "Internet restored in Kazakhstan"),
        ("articles.json", 2, "First"),
        ("rss2.rss", 2, "Fuel prices capped for 180 days"),
        ("atom.atom", 2, "Le couvre-feu prolongé"),
        ("truncated_item.xml", 1, "Complete item"),
    ],
)
def test_fixtures_parse(
    fixture_bytes: Callable[[str], bytes], name: str, count: int, title: str
) -> None:
    """Every valid fixture gives its articles, first title first, with caller fields unset."""
    articles = parse_document(name, fixture_bytes(name))
    assert len(articles) == count
    assert articles[0].title == title
    for article in articles:
        assert (article.source_id, article.key, article.location) == ("", "", None)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.txt", "empty document"),
        ("blank.txt", "empty document"),
        ("empty.eml", "e-mail has neither a subject nor a text body"),
        ("malformed.json", "invalid JSON at line 4 column 3: Expecting ',' delimiter"),
        ("items_object.json", "JSON Feed: 'items' must be a list, not an object"),
        ("wrong_type.json", "JSON item 2: 'title' must be a string, not a list"),
        ("html_page.xml", "not a feed: no RSS, RDF or Atom root element"),
        ("truncated_channel.xml", "malformed feed with no entries: <unknown>:6:4: unclosed token"),
        ("billion_laughs.xml", "feed declares XML entities (DOCTYPE with ENTITY), refused"),
        ("quadratic_utf16.rss", "feed declares XML entities (DOCTYPE with ENTITY), refused"),
    ],
)
def test_invalid_fixtures_raise(
    fixture_bytes: Callable[[str], bytes], name: str, reason: str
) -> None:
    """Every invalid fixture raises DocumentError with its specific reason."""
    with pytest.raises(DocumentError) as raised:
        parse_document(name, fixture_bytes(name))
    assert str(raised.value) == reason


def test_supported_suffixes() -> None:
    """The supported suffixes are exactly the ten formats of the contract."""
    assert {
        ".txt", ".md", ".markdown", ".html", ".htm", ".json", ".xml", ".rss", ".atom", ".eml"
    } == SUPPORTED_SUFFIXES  # fmt: skip


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("dir.d/NOTE.TXT", "<p>para</p>"),  # "# Heading" is a section label
        ("post.Markdown", "Heading"),
        ("page.HTM", "# Heading"),  # no <title> or <h1>: the first line of text
    ],
)
def test_suffix_selects_format_case_insensitively(name: str, title: str) -> None:
    """Only the last suffix of the name selects the format, whatever its case."""
    [article] = parse_document(name, b"# Heading\n<p>para</p>\n")
    assert article.title == title


@pytest.mark.parametrize("name", ["report.pdf", "README", "archive.txt.gz", "noext."])
def test_unsupported_suffix(name: str) -> None:
    """An unsupported or missing suffix raises DocumentError listing the supported ones."""
    with pytest.raises(DocumentError, match=r"^unsupported file type .*supported: \.atom, "):
        parse_document(name, b"anything")


def test_fields_are_cleaned() -> None:
    """NULs and lone surrogates never reach an article; one-line fields are single lines."""
    document = b'{"title": "a\\u0000b\\n c", "body": "x\\ud800y", "tags": ["  t  ", "t"]}'
    [article] = parse_document("doc.json", document)
    assert article.title == "ab c"
    assert article.body == "x?y"
    assert article.tags == ("t",)


def test_text_fields_are_capped() -> None:
    """No text field is longer than MAX_FIELD_CHARS, whatever the document holds."""
    description = b"word " * (MAX_FIELD_CHARS // 4)
    document = b'<rss version="2.0"><channel><item><title>t</title><description>'
    document += description + b"</description></item></channel></rss>"
    [article] = parse_document("big.rss", document)
    assert len(article.summary) == MAX_FIELD_CHARS


def _assert_clean(article: Article) -> None:
    for text in (article.title, article.body, article.summary):
        text.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in text
        assert len(text) <= MAX_FIELD_CHARS
    assert "\n" not in article.title
    if article.published is not None:
        assert article.published.utcoffset() == timedelta(0)


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=DOCUMENTS)
def test_any_bytes_give_articles_or_document_error(suffix: str, data: bytes) -> None:
    """Whatever the bytes, each format gives clean articles or raises DocumentError only."""
    try:
        articles = parse_document("fuzz" + suffix, data)
    except DocumentError:
        return
    for article in articles:
        _assert_clean(article)
