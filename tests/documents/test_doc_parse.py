"""parse_document: the suffix picks the format, and any bytes give articles or DocumentError."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import documents
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


DEEP = 10 * sys.getrecursionlimit()
"""Nesting ten times deeper than any recursive parser can follow."""


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        pytest.param(
            "deep.json",
            b"[" * 100_000 + b"]" * 100_000,
            "invalid JSON: nested too deeply",
            id="json-lists",
        ),
        pytest.param(
            "deep.json",
            b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
            "invalid JSON: nested too deeply",
            id="json-objects",
        ),
        pytest.param(
            "deep.eml",
            b"Subject: s\n" + b"Content-Type: message/rfc822\n\n" * DEEP + b"Subject: t\n\nx",
            "e-mail parts nested more than 100 levels deep",
            id="eml-parts",
        ),
        pytest.param(
            "deep.eml",
            b"Subject: s\nContent-Type: text/plain " + b"(" * DEEP + b")" * DEEP + b"\n\nx",
            "document nested too deeply",
            id="eml-header",
        ),
    ],
)
def test_deep_nesting_that_cannot_be_read_raises_document_error(
    name: str, data: bytes, reason: str
) -> None:
    """JSON and e-mail nested past the recursion limit raise DocumentError, not RecursionError."""
    with pytest.raises(DocumentError) as raised:
        parse_document(name, data)
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("name", "data", "title", "text"),
    [
        pytest.param(
            "deep.html",
            b"<title>t</title>" + b"<div><b>" * DEEP + b"deep text" + b"</b></div>" * DEEP,
            "t",
            "deep text",
            id="html-closed",
        ),
        pytest.param(
            "deep.htm",
            b"<h1>t</h1>" + b"<span>" * DEEP + b"deep text",
            "t",
            "deep text",
            id="html-unclosed",
        ),
        pytest.param(
            "deep.rss",
            b'<rss version="2.0"><channel><item><title>t</title><description><![CDATA['
            + b"<div>" * DEEP
            + b"deep text"
            + b"</div>" * DEEP
            + b"]]></description></item></channel></rss>",
            "t",
            "deep text",
            id="rss-html",
        ),
        pytest.param(
            "deep.xml",
            b'<rss version="2.0"><channel><item><title>t</title><description>deep text'
            + b"<x>" * DEEP
            + b"</x>" * DEEP
            + b"</description></item></channel></rss>",
            "t",
            "deep text",
            id="rss-elements",
        ),
        pytest.param(
            "deep.atom",
            b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>t</title>'
            b'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            + b"<div>" * DEEP
            + b"deep text"
            + b"</div>" * DEEP
            + b"</div></content></entry></feed>",
            "t",
            "deep text",
            id="atom-xhtml",
        ),
        pytest.param(
            # Front matter YAML the loader cannot follow is ignored, like any broken front matter.
            # PyYAML needs several frames a level, so the recursion limit in levels is enough.
            "deep.md",
            b"---\ntitle: " + b"[" * sys.getrecursionlimit() + b"\n---\n# t\ndeep text\n",
            "t",
            "deep text",
            id="markdown-front-matter",
        ),
    ],
)
def test_deep_nesting_that_can_be_read_is_read(
    name: str, data: bytes, title: str, text: str
) -> None:
    """HTML, feeds and Markdown nested past the recursion limit still give their article."""
    [article] = parse_document(name, data)
    assert article.title == title
    assert text in (article.body + article.summary)


def _raise(error: BaseException) -> Callable[[bytes], list[Article]]:
    def parser(data: bytes) -> list[Article]:
        raise error

    return parser


def test_recursion_error_from_any_parser_becomes_document_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should a parser's library still recurse too deep, the caller gets DocumentError."""
    monkeypatch.setattr(
        documents, "_PARSERS", {".txt": _raise(RecursionError("maximum recursion depth"))}
    )
    with pytest.raises(DocumentError, match=r"^document nested too deeply$"):
        parse_document("deep.txt", b"x")


def test_memory_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """MemoryError is the process's trouble, not the document's: it is never a DocumentError."""
    monkeypatch.setattr(documents, "_PARSERS", {".txt": _raise(MemoryError())})
    with pytest.raises(MemoryError):
        parse_document("huge.txt", b"x")
