"""The fast path against the feedparser path: the same articles, or a decline.

Every document here goes through both paths: whenever parse_fast returns articles, they must equal
parse_feed(..., fast=False)'s, Article for Article. The documents are hand-written fixtures
(tests/fixtures/feeds), feeds composed in code from formats, encodings and item shapes, and feeds
that Hypothesis builds from the elements the model knows and some it does not. Other tests check
that the fast path is really taken for ordinary feeds (so that declining everything cannot pass),
that it declines what it does not model, and that hostile bytes cost it little.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from time import perf_counter

import feedparser
import pytest
from feedparser.api import StrictFeedParser
from feedparser.encodings import RE_XML_PI_ENCODING
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import _HTMLSanitizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.documents import fastfeed
from monitor.documents.fastfeed import parse_fast
from monitor.documents.feedfile import parse_feed
from monitor.errors import DocumentError
from monitor.models import Article

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
BASE_URL = "https://feeds.example.com/section/feed.xml"


def agree(data: bytes, base_url: str | None = None) -> list[Article] | None:
    """parse_fast's answer, checked against feedparser's whenever it is not None."""
    fast = parse_fast(data, base_url)
    if fast is not None:
        try:
            slow = parse_feed(data, base_url, fast=False)
        except DocumentError as error:
            pytest.fail(f"the fast path read {len(fast)} articles, feedparser failed: {error}")
        assert fast == slow
    return fast


# -- Hand-written fixtures ---------------------------------------------------------------------

READ_FAST = [
    "rss091.xml",
    "rss092.xml",
    "rss10.rdf",
    "rss2_namespaces.rss",
    "atom10.atom",
    "cp1251.rss",
    "latin1.rss",
    "utf16.rss",
    "entities.rss",
]
LEFT_TO_FEEDPARSER = {
    "atom03.atom": "Atom 0.3",
    "not_well_formed.rss": "a bare & and an HTML entity: not XML",
    "wrong_charset.rss": "windows-1252 bytes declared as UTF-8",
}


@pytest.mark.parametrize("base_url", [None, BASE_URL], ids=["no-base", "base-url"])
@pytest.mark.parametrize("name", READ_FAST)
def test_fixture_read_alike_by_both_paths(name: str, base_url: str | None) -> None:
    """Each format, namespace and encoding the model covers gives feedparser's articles."""
    articles = agree((FEEDS / name).read_bytes(), base_url)
    assert articles, f"{name} was not read by the fast path"


@pytest.mark.parametrize("name", list(LEFT_TO_FEEDPARSER))
def test_fixture_outside_the_model_left_to_feedparser(name: str) -> None:
    """What the model does not cover is declined, and parse_feed still reads it with feedparser."""
    data = (FEEDS / name).read_bytes()
    assert parse_fast(data) is None, LEFT_TO_FEEDPARSER[name]
    articles = parse_feed(data)
    assert articles
    assert articles == parse_feed(data, fast=False)


def test_fixture_values_on_the_fast_path() -> None:
    """Spot checks that the fast path's articles are the documented ones, not merely consistent:
    xml:base nesting, XHTML content, published before updated, feed language, the last author."""
    first, second = agree((FEEDS / "atom10.atom").read_bytes()) or []
    assert first.url == "https://blog.example.com/posts/field-notes.html"
    assert first.title == "Notes from the field"
    assert first.body == "First paragraph.\n\nSecond paragraph & a list:\n\none\ntwo"
    assert first.summary == "A short summary."
    assert first.published is not None
    assert first.published.isoformat() == "2022-04-01T15:00:00+00:00"
    assert first.tags == ("fieldwork", "birds")
    assert first.language == "en"
    # feedparser's quirk, kept: the second author inherits the first one's e-mail address.
    assert first.author == "Ivo Petrov (ruth@blog.example.com)"
    assert (second.summary, second.url) == ("", "https://blog.example.com/posts/text-only")


# -- Composed feeds: formats x item shapes x encodings ---------------------------------------------

XMLNS = {
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "atom": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "slash": "http://purl.org/rss/1.0/modules/slash/",
    "wfw": "http://wellformedweb.org/CommentAPI/",
    "x": "urn:example:unknown",
}
DECLARATIONS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in XMLNS.items())
LONG_HTML = "".join(f"&lt;p&gt;Paragraph {n}: " + "words and more words " * 20 for n in range(500))

RSS_ITEMS = {
    "complete": """<title>Prices capped</title><link>https://ex.com/1</link>
        <guid isPermaLink="false">ex-1</guid><pubDate>Thu, 06 Jan 2022 12:00:00 +0600</pubDate>
        <dc:creator>Aigerim S.</dc:creator><category>Economy</category><category>Energy</category>
        <description>&lt;p&gt;The &lt;b&gt;cap&lt;/b&gt; holds.&lt;/p&gt;</description>
        <content:encoded><![CDATA[<p>Capped for 180 days.</p><p>Protests went on.</p>]]>
        </content:encoded>""",
    "title only": "<title>Only a title</title>",
    "empty": "",
    "no title": "<description>Description only, no title</description><link>https://ex.com/2</link>",
    "links": """<title>Links</title><link>https://ex.com/page</link>
        <atom:link rel="enclosure" href="https://ex.com/a.mp3"/><comments>https://ex.com/c</comments>
        <enclosure url="https://ex.com/b.mp3" length="1" type="audio/mpeg"/>
        <atom:link rel="alternate" type="text/html" href="https://ex.com/alternate"/>""",
    "categories": """<title>Tags</title><category domain="https://ex.com/t">World</category>
        <category>World</category><category> Asia </category><dc:subject>Trade</dc:subject>
        <category></category><category domain="d"/>""",
    "dates": """<title>Dates</title><pubDate>Mon, 6 Jun 2022 23:30:00 EST</pubDate>
        <dc:date>2022-06-07T01:02:03.5-05:30</dc:date>""",
    "iso date only": "<title>ISO</title><dc:date>2022-06-07</dc:date>",
    "long text": f"<title>Long</title><description>{LONG_HTML}</description>",
    "entities": """<title>Caf&#233; &amp; co &#x93;ok&#x94; &lt;b&gt;bold&lt;/b&gt;</title>
        <description>&amp;nbsp;&amp;eacute;&amp;#8364; &lt;br&gt;x</description>
        <content:encoded><![CDATA[<p>A&nbsp;B</p><script>x()</script>]]></content:encoded>""",
    "relative links": """<title>Relative</title><link>/news/1</link>
        <guid>2022/guid-as-link</guid>""",
    "xml:base": """<title>Based</title><link xml:base="https://other.example.org/d/">p.html</link>""",
    "authors": """<title>Authors</title><author>jane@ex.com (Jane Doe)</author>
        <dc:creator>Bob</dc:creator>""",
    "media": """<title>Media</title><media:content url="https://ex.com/v.mp4">
        <media:title>Video title</media:title><media:description>About the video</media:description>
        <media:thumbnail url="https://ex.com/t.jpg"/></media:content>
        <media:keywords>one, two ,, three</media:keywords><slash:comments>3</slash:comments>
        <wfw:commentRss>https://ex.com/c.rss</wfw:commentRss><x:extension>aside</x:extension>""",
    "cyrillic": """<title>Цены на топливо</title><description>Правительство заморозило
        цены.</description><category>Экономика</category>""",
}

ATOM_ENTRIES = {
    "complete": """<title>Curfew extended</title><id>urn:uuid:1</id>
        <link href="https://ex.fr/1"/><updated>2022-01-08T09:00:00+01:00</updated>
        <published>2022-01-08T08:00:00Z</published>
        <author><name>Claire</name><email>c@ex.fr</email></author><category term="News"/>
        <summary>Short.</summary><content type="html">&lt;p&gt;Long.&lt;/p&gt;</content>""",
    "title only": "<title>Only a title</title>",
    "empty": "",
    "no title": "<summary>Summary only</summary><id>urn:uuid:2</id>",
    "links": """<title>Links</title><link rel="self" href="https://ex.fr/self"/>
        <link rel="enclosure" type="audio/mpeg" href="https://ex.fr/a.mp3"/>
        <link rel="alternate" type="text/html" href="https://ex.fr/html"/>
        <link rel="alternate" type="application/pdf" href="https://ex.fr/pdf"/>""",
    "categories": """<title>Tags</title><category term="a" scheme="s"/><category term="a"/>
        <category term="b" label="B"/><category term=""/>""",
    "dates": """<title>Dates</title><updated>2022-06-07T01:02:03.123456-05:30</updated>""",
    "iso date only": "<title>ISO</title><updated>2022-06-07</updated>",
    "long text": f'<title>Long</title><content type="html">{LONG_HTML}</content>',
    "entities": """<title type="html">Caf&#233; &amp;amp; &lt;i&gt;co&lt;/i&gt;</title>
        <content type="html">&lt;p&gt;A&amp;nbsp;B &amp;#x263A;&lt;/p&gt;</content>""",
    "relative links": """<title>Relative</title><link href="../up/1"/><id>local-id</id>""",
    "xml:base": """<title>Based</title><link xml:base="https://other.example.org/d/" href="p"/>""",
    "authors": """<title>Authors</title><author><name>One</name><email>one@ex.fr</email>
        </author><author><name>Two</name></author><author><uri>https://three.ex</uri></author>""",
    "media": """<title>Media</title><media:content url="https://ex.fr/v.mp4">
        <media:title type="html">&lt;b&gt;Video&lt;/b&gt;</media:title></media:content>""",
    "cyrillic": """<title>Цены на топливо</title><content>Правительство заморозило
        цены.</content><category term="Экономика"/>""",
    "xhtml": """<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">A <b>bold</b>
        title</div></title><content type="xhtml" xml:lang="de"><div
        xmlns="http://www.w3.org/1999/xhtml"><p>Erster</p><p>Zweiter&#160;Absatz</p></div>
        </content>""",
}


def rss(items: Iterable[str], version: str = "2.0") -> str:
    body = "".join(f"<item>{item}</item>" for item in items)
    return (
        f'<rss version="{version}" {DECLARATIONS}><channel><title>Composed</title>'
        f"<link>https://ex.com/</link><description>Composed feed</description>"
        f"<language>en</language>{body}</channel></rss>"
    )


def rdf(items: Iterable[str]) -> str:
    body = "".join(
        f'<item rdf:about="https://ex.com/{n}">{item}</item>' for n, item in enumerate(items)
    )
    return (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        f'xmlns="http://purl.org/rss/1.0/" {DECLARATIONS}><channel rdf:about="https://ex.com/">'
        "<title>Composed</title><link>https://ex.com/</link><description>RDF</description>"
        f"</channel>{body}</rdf:RDF>"
    )


def atom(entries: Iterable[str]) -> str:
    body = "".join(f"<entry>{entry}</entry>" for entry in entries)
    declarations = DECLARATIONS.replace('xmlns:atom="http://www.w3.org/2005/Atom"', "")
    return (
        f'<feed xmlns="http://www.w3.org/2005/Atom" {declarations} xml:lang="fr">'
        f"<title>Composed</title><id>urn:feed</id><updated>2022-01-01T00:00:00Z</updated>"
        f"{body}</feed>"
    )


def encode(text: str, encoding: str) -> bytes:
    """The document in ``encoding``, declared in its XML declaration (or as a BOM says)."""
    if encoding == "undeclared":
        return text.encode()
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + f'<?xml version="1.0" encoding="utf-8"?>\n{text}'.encode()
    if encoding in ("utf-16", "utf-16-be-bom"):
        declared = f'<?xml version="1.0" encoding="UTF-16"?>\n{text}'
        return (
            declared.encode("utf-16")
            if encoding == "utf-16"
            else b"\xfe\xff" + declared.encode("utf-16-be")
        )
    return f'<?xml version="1.0" encoding="{encoding}"?>\n{text}'.encode(
        encoding, errors="xmlcharrefreplace"
    )


COMPOSERS: dict[str, Callable[[Iterable[str]], str]] = {
    "rss20": rss,
    "rss091": lambda items: rss(items, "0.91"),
    "rss092": lambda items: rss(items, "0.92"),
    "rss10": rdf,
}
ENCODINGS = [
    "utf-8",
    "undeclared",
    "utf-8-bom",
    "utf-16",
    "utf-16-be-bom",
    "iso-8859-1",
    "windows-1251",
    "windows-1252",
]


def composed() -> Iterable[object]:
    for shape, item in RSS_ITEMS.items():
        for name, compose in COMPOSERS.items():
            yield pytest.param(compose([item]), "utf-8", id=f"{name}-{shape}")
    for shape, entry in ATOM_ENTRIES.items():
        yield pytest.param(atom([entry]), "utf-8", id=f"atom10-{shape}")
    everything = list(RSS_ITEMS.values())
    for encoding in ENCODINGS:
        yield pytest.param(rss(everything), encoding, id=f"rss20-all-{encoding}")
        yield pytest.param(atom(ATOM_ENTRIES.values()), encoding, id=f"atom10-all-{encoding}")


@pytest.mark.parametrize("base_url", [None, BASE_URL], ids=["no-base", "base-url"])
@pytest.mark.parametrize(("text", "encoding"), list(composed()))
def test_composed_feed_read_alike_by_both_paths(
    text: str, encoding: str, base_url: str | None
) -> None:
    """Ordinary RSS 0.91/0.92/1.0/2.0 and Atom 1.0, in every encoding, take the fast path and
    give feedparser's articles: missing fields, several links and categories, dates with time
    zones, entities, CDATA, relative links, long text, namespaced extensions."""
    assert agree(encode(text, encoding), base_url) is not None


DECLINED = {
    "not XML": b'<rss version="2.0"><channel><item><title>A & B</title></item></channel></rss>',
    "truncated": b'<rss version="2.0"><channel><item><title>Cut</title></item><item><ti',
    "HTML entity": b'<rss version="2.0"><channel><item><title>&nbsp;</title></item></channel>'
    b"</rss>",
    "DOCTYPE": b'<!DOCTYPE rss SYSTEM "http://my.netscape.com/publish/formats/rss-0.91.dtd">'
    b'<rss version="0.91"><channel><item><title>Netscape</title></item></channel></rss>',
    "Atom 0.3": (FEEDS / "atom03.atom").read_bytes(),
    "undecodable": b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
    b"<title>caf\xe9</title></item></channel></rss>",
    "unknown encoding": b'<?xml version="1.0" encoding="x-unknown"?><rss version="2.0">'
    b"<channel><item><title>t</title></item></channel></rss>",
    "date form": b'<rss version="2.0"><channel><item><title>t</title>'
    b"<pubDate>06 Jan 22 12:00 CEST</pubDate></item></channel></rss>",
    "impossible date": b'<rss version="2.0"><channel><item><title>t</title>'
    b"<pubDate>Mon, 31 Feb 2022 12:00:00 GMT</pubDate></item></channel></rss>",
    "georss": b'<rss version="2.0" xmlns:georss="http://www.georss.org/georss"><channel><item>'
    b"<title>t</title><georss:point>45 -71</georss:point></item></channel></rss>",
    "markup in a title": b'<rss version="2.0"><channel><item><title>A <b>b</b></title></item>'
    b"</channel></rss>",
    "base64 content": b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>t</title>'
    b'<content type="image/png">iVBORw0KGgo=</content></entry></feed>',
    "image in an item": b'<rss version="2.0"><channel><item><title>t</title><image><url>u</url>'
    b"</image></item></channel></rss>",
    "non-ASCII name": '<rss version="2.0"><channel><item><title>t</title><ünknown>x</ünknown>'
    "</item></channel></rss>".encode(),
    "JSON": b'{"items": []}',
    "empty": b"",
}


@pytest.mark.parametrize("data", DECLINED.values(), ids=DECLINED.keys())
def test_outside_the_model_is_declined(data: bytes) -> None:
    """Documents the model does not cover make parse_fast return None (feedparser reads them)."""
    assert parse_fast(data) is None


# -- Feeds that Hypothesis builds ------------------------------------------------------------------

_CHARACTERS = st.characters(
    blacklist_categories=("Cs", "Cn"), min_codepoint=0x20
) | st.sampled_from("\t\n\r")
_TEXT = st.sampled_from(
    [
        "",
        " ",
        "Plain",
        "  padded  ",
        "café",
        "cafÃ© crÃ¨me",
        "\x93quoted\x94 \x80",
        "Tom & Jerry",
        "a < b > c",
        "<b>bold</b> text",
        "<p>One</p><p>Two</p>",
        "&amp;nbsp; x",
        "&nbsp;",
        "&bogus; z",
        "</unknowntag>",
        "<script>alert(1)</script>hi",
        "Привет",
        "<br>a<br/>b",
        "&#169; &#x263A;",
        "\u00a0\u2028\x85",
    ]
) | st.text(_CHARACTERS, max_size=12)
_LINKS = st.sampled_from(
    [
        "https://ex.com/a",
        "http://ex.com/b?x=1&y=2",
        "/rel/path",
        "rel/page.html",
        "",
        "  https://ex.com/sp  ",
        "javascript:alert(1)",
        "//cdn.ex.com/x",
        "https://ex.com/a&amp;b",
        "urn:uuid:1234",
        "tag:ex.com,2020:1",
        "http:///triple",
        "?q=1",
        "12345",
    ]
)
_DATES = st.sampled_from(
    [
        "Thu, 06 Jan 2022 12:00:00 +0600",
        "Mon, 6 Jan 2020 01:02:03 GMT",
        "06 Jan 2022 12:00 EST",
        "Sun, 01 Jan 1899 00:00:00 GMT",
        "2022-01-08T09:00:00+01:00",
        "2022-01-08T09:00:00.123456-05:30",
        "2022-01-08",
        "2022-01-08T09:00:00+0530",
        "",
        "not a date",
        "Fri, 2006/13/15 08:19:53 EDT",
        "Sat, 07 Sep 2002 00:00:01 UT",
        "0001-01-01T00:00:00+01:00",
    ]
)
_LANGS = st.sampled_from(["en", "en_US", "fr-CA", "", "ru"])
_BASES = st.sampled_from(["https://base.ex.com/dir/", "/other/", "sub/", "javascript:x", ""])


def _render(name: str, text: str, attrs: dict[str, str], cdata: bool) -> str:
    body = f"<![CDATA[{text}]]>" if cdata and "]]>" not in text else _escape(text)
    return f"<{name}{_attributes(attrs)}>{body}</{name}>"


def _attributes(attrs: dict[str, str]) -> str:
    quoted = {key: _escape(value).replace('"', "&quot;") for key, value in attrs.items()}
    return "".join(f' {key}="{value}"' for key, value in quoted.items())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _element(
    name: str | st.SearchStrategy[str],
    text: st.SearchStrategy[str] = _TEXT,
    **attrs: st.SearchStrategy[str],
) -> st.SearchStrategy[str]:
    """An element with text (escaped or in CDATA), some of ``attrs``, xml:lang and xml:base."""
    names = st.just(name) if isinstance(name, str) else name
    optional = {**attrs, "xml:lang": _LANGS, "xml:base": _BASES}
    return st.builds(
        _render, names, text, st.fixed_dictionaries({}, optional=optional), st.booleans()
    )


def _empty(name: str, **attrs: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """An empty element with some of ``attrs``."""

    def render(values: dict[str, str]) -> str:
        return f"<{name}{_attributes(values)}/>"

    return st.fixed_dictionaries({}, optional=attrs).map(render)


_MEDIA = st.lists(
    st.one_of(
        _element("media:title", type=st.sampled_from(["plain", "html"])),
        _element("media:description"),
        _element("media:category", scheme=st.just("urn:s")),
        _empty("media:thumbnail", url=_LINKS),
        _element("media:credit"),
    ),
    max_size=3,
).map("".join)

_RSS_CHILD = st.one_of(
    _element("title"),
    _element("link", _LINKS),
    _element("description"),
    _element("content:encoded"),
    _element("guid", _LINKS, isPermaLink=st.sampled_from(["true", "false", "True"])),
    _element(st.sampled_from(["pubDate", "dc:date"]), _DATES),
    _element(st.sampled_from(["dc:creator", "author"]), _TEXT | st.just("j@ex.com (Jane)")),
    _element(st.sampled_from(["category", "dc:subject"]), _TEXT, domain=st.just("urn:d")),
    _empty(
        "atom:link",
        href=_LINKS,
        rel=st.sampled_from(["alternate", "self", "enclosure", "ALTERNATE"]),
        type=st.sampled_from(["text/html", "application/rss+xml", "html"]),
    ),
    _empty("enclosure", url=_LINKS, type=st.just("audio/mpeg")),
    _element("comments", _LINKS),
    _element("source", _TEXT, url=_LINKS),
    _MEDIA.map(lambda inner: f'<media:content url="https://ex.com/v">{inner}</media:content>'),
    _MEDIA.map(lambda inner: f"<media:group>{inner}</media:group>"),
    _element(st.sampled_from(["media:keywords", "itunes:keywords"]), st.just("a, b ,c") | _TEXT),
    _element(st.sampled_from(["summary", "itunes:summary", "dc:description", "media:title"])),
    _element(st.sampled_from(["x:foo", "foo", "slash:comments", "wfw:commentRss", "dc:language"])),
    st.just("<!-- a comment -->"),
    _empty("itunes:category", text=st.sampled_from(["Tech", ""])),
)

_ATOM_TEXT_TYPES = st.sampled_from(["text", "html", "xhtml", "TEXT"])
_XHTML = st.sampled_from(
    [
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>Para <b>bold</b> &amp; more</p></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml">Just text</div>',
        '\n <div xmlns="http://www.w3.org/1999/xhtml" class="c"><p>x</p></div>\n',
        '<x:div xmlns:x="http://www.w3.org/1999/xhtml"><x:p>prefixed</x:p></x:div>',
        '<div xmlns="http://www.w3.org/1999/xhtml">a</div><div xmlns="http://www.w3.org/1999/xhtml">b'
        "</div>",
        '<div xmlns="http://www.w3.org/1999/xhtml"><img src="a.png" alt="&quot;"/><br/>tail</div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p xml:lang="de">Sprache</p></div>',
        "<div>no namespace</div>",
    ]
)


def _atom_text(name: str) -> st.SearchStrategy[str]:
    xhtml = _XHTML.map(lambda inner: f'<{name} type="xhtml">{inner}</{name}>')
    return _element(name, type=_ATOM_TEXT_TYPES) | xhtml


_AUTHOR_PART = st.one_of(
    _element("name", st.sampled_from(["Claire", "", " Bob ", "Ann (x)"]) | _TEXT),
    _element("email", st.sampled_from(["c@ex.fr", "", "bad"])),
    _element("uri", _LINKS),
)
_ATOM_CHILD = st.one_of(
    _atom_text("title"),
    _empty(
        "link",
        href=_LINKS,
        rel=st.sampled_from(["alternate", "self", "enclosure", "related"]),
        type=st.sampled_from(["text/html", "application/atom+xml", "audio/mpeg"]),
    ),
    _element("id", _LINKS),
    _element(st.sampled_from(["published", "updated", "issued", "modified", "created"]), _DATES),
    st.tuples(st.sampled_from(["author", "contributor"]), st.lists(_AUTHOR_PART, max_size=3)).map(
        lambda name_parts: f"<{name_parts[0]}>{''.join(name_parts[1])}</{name_parts[0]}>"
    ),
    _empty("category", term=st.sampled_from(["News", "", " x "]), scheme=st.just("s"), label=_TEXT),
    _atom_text("summary"),
    _atom_text("content"),
    _element("content", type=st.sampled_from(["image/png", "text/xml"]), src=_LINKS),
    _element("rights"),
    _element(st.sampled_from(["x:foo", "media:title", "dc:creator"])),
)


def _feed(
    children: st.SearchStrategy[str], wrap: Callable[[list[str]], str]
) -> st.SearchStrategy[str]:
    entries = st.lists(st.lists(children, max_size=8).map("".join), max_size=4)
    return entries.map(wrap)


_DOCUMENTS = st.one_of(
    _feed(_RSS_CHILD, rss),
    _feed(_RSS_CHILD, lambda items: rss(items, "0.92")),
    _feed(_RSS_CHILD, rdf),
    _feed(_ATOM_CHILD, atom),
)
# Other prefixes for the same namespaces, and prefixes of feedparser's bound to other namespaces.
_PREFIXES = st.fixed_dictionaries(
    {},
    optional={
        "dc": st.sampled_from(["DC", "dublin", "content"]),
        "atom": st.sampled_from(["a10", "A"]),
        "media": st.sampled_from(["m", "itunes"]),
        "x": st.sampled_from(["dc", "media"]),
    },
)


def _rename(document: str, prefixes: dict[str, str]) -> str:
    """The document with some prefixes renamed (not onto one that another namespace keeps)."""
    renamed = {old: new for old, new in prefixes.items() if new not in XMLNS or new in prefixes}
    if not renamed:
        return document
    pattern = re.compile(r"(</?|xmlns:)(" + "|".join(renamed) + r")(?=[:=])")
    return pattern.sub(lambda match: match.group(1) + renamed[match.group(2)], document)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _DOCUMENTS,
    _PREFIXES,
    st.sampled_from(["utf-8", "undeclared", "utf-16", "iso-8859-1", "windows-1251"]),
    st.sampled_from([None, BASE_URL, "http://ex.org/"]),
)
def test_generated_feed_read_alike_or_declined(
    document: str, prefixes: dict[str, str], encoding: str, base_url: str | None
) -> None:
    """Whatever mix of known, unknown, duplicated and misplaced elements, text, attributes and
    namespaces: the fast path gives feedparser's articles, or declines."""
    agree(encode(_rename(document, prefixes), encoding), base_url)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        "{}{} {} {:04d} {:02d}:{:02d}{} {}".format,
        st.sampled_from(["", "Mon, ", "sat, "]),
        st.integers(0, 32),
        st.sampled_from(["Jan", "feb", "MAR", "Sep", "Dec", "Foo"]),
        st.integers(1, 9999),
        st.integers(0, 25),
        st.integers(0, 61),
        st.sampled_from(["", ":00", ":59", ":60"]),
        st.sampled_from(["GMT", "UT", "Z", "UTC", "EST", "pdt", "+0000", "-0530", "+1400", "CET"]),
    )
    | st.builds(
        "{:04d}-{:02d}-{:02d}{}".format,
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from(["", "T00:00", "T23:59:59", "t12:30:45.5", "T25:00:00"]).flatmap(
            lambda time: st.sampled_from([time + zone for zone in ["", "Z", "+05:30", "-0800"]])
        ),
    )
)
def test_generated_date_read_alike_or_declined(date: str) -> None:
    """RFC 822 and W3C dates in and out of range, in every time zone form: the same published
    date as feedparser's, or a decline."""
    for element in ("pubDate", "dc:date"):
        document = f'<rss version="2.0" {DECLARATIONS}><channel><item><title>t</title>'
        document += f"<{element}>{date}</{element}></item></channel></rss>"
        agree(document.encode())


# -- Hostile and arbitrary bytes -------------------------------------------------------------------


def _never_fails(data: bytes) -> None:
    """Any bytes: the fast path gives articles or None, parse_feed articles or DocumentError."""
    agree(data)
    with contextlib.suppress(DocumentError):
        parse_feed(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    _never_fails(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _DOCUMENTS.map(str.encode),
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.sampled_from(
                [
                    b"",
                    b"\x00",
                    b"<",
                    b"&",
                    b"]]>",
                    b"&#0;",
                    b"\xff",
                    b"\xc3",
                    "\u00e9".encode(),
                    b"<?pi x?>",
                    "\ufeff".encode(),
                    b"<a:b/>",
                    b' a="1" a="2"',
                    b"xmlns:q=''",
                    b"\r",
                ]
            ),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_damaged_feed(document: bytes, damages: list[tuple[float, bytes, int]]) -> None:
    """A generated feed with bytes inserted or cut: read alike, declined, or refused."""
    data = bytearray(document)
    for where, inserted, cut in damages:
        at = int(where * len(data))
        data[at : at + cut] = inserted
    _never_fails(bytes(data))


def _quick(data: bytes) -> list[Article] | None:
    start = perf_counter()
    articles = parse_fast(data)
    assert perf_counter() - start < 5.0
    return articles


def test_hostile_documents_cost_the_fast_path_little(fixture_bytes: Callable[[str], bytes]) -> None:
    """Entity bombs, deep nesting and crafted lines are declined or read in linear time; sizes are
    such that a quadratic step would take minutes."""
    assert _quick(fixture_bytes("billion_laughs.xml")) is None
    assert _quick(fixture_bytes("quadratic_utf16.rss")) is None
    deep = b'<rss version="2.0"><channel><item>' + b"<x:a xmlns:x='urn:x'>" * 100_000
    assert _quick(deep + b"</x:a>" * 100_000 + b"</item></channel></rss>") is None
    # feedparser's search for a declared encoding backtracks over a long first line of quotes.
    assert _quick(b'<?xml version="1.0" encoding="' + b'u"' * 500_000) is None
    item = b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><item>'
    # An attribute of 5 MB, and an author name that feedparser's e-mail search scans quadratically.
    big_attribute = (
        item + b'<title lang="' + b"x" * 5_000_000 + b'">t</title></item></channel></rss>'
    )
    assert _quick(big_attribute)
    long_author = item + b"<title>t</title><dc:creator>" + b"a." * 200_000 + b"@</dc:creator>"
    [article] = _quick(long_author + b"</item></channel></rss>") or []
    assert article.author is not None
    assert article.author.endswith("a.@")


# -- The model's copies of feedparser -------------------------------------------------------------


def test_tables_copied_from_feedparser_match_it() -> None:
    """The namespaces, handler names, HTML tags and URI schemes copied are feedparser's own."""
    namespaces = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
    assert namespaces == fastfeed.NAMESPACES
    handlers = {
        name.split("_", 2)[2]
        for name in dir(StrictFeedParser)
        if name.startswith(("_start_", "_end_"))
    }
    assert handlers == fastfeed.HANDLED_NAMES
    assert _HTMLSanitizer.acceptable_elements == fastfeed.LOOKS_LIKE_HTML_ELEMENTS
    assert set(feedparser.urls.ACCEPTABLE_URI_SCHEMES) == fastfeed.ACCEPTABLE_URI_SCHEMES


_FIRST_LINES = st.lists(
    st.sampled_from([b"<?", b"?>", b"encoding=", b"'", b'"', b"utf-8", b"\n", b" ", b"?", b"x"]),
    max_size=14,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_FIRST_LINES)
def test_declared_encoding_is_feedparsers(line: bytes) -> None:
    """The linear search for a declared encoding finds what feedparser's expression matches."""
    match = RE_XML_PI_ENCODING.match(line)
    assert fastfeed._declared_encoding(line) == (match.group(1).decode().lower() if match else "")


_FEEDPARSER_EMAIL = re.compile(
    r"(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"
    r"([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["a", "@", ".", "-", "+", "_", "1", "[", "]", "?subject=x", " ", "(", "com"]
        ),
        max_size=14,
    ).map("".join)
)
def test_email_search_is_feedparsers(text: str) -> None:
    """The look-behind that makes feedparser's e-mail search linear finds the same match."""
    expected, found = _FEEDPARSER_EMAIL.search(text), fastfeed._EMAIL.search(text)
    assert (found and found.group(0)) == (expected and expected.group(0))
