"""A fast path for well-formed feeds: lxml parses, and a model of feedparser gives the same entries.

feedparser (see feedfile) is slow, and it defines what a feed's articles are, quirks included: an
article must not change with the path that read it. So this module does not read RSS and Atom from
their specifications. It replays on lxml's tree, in document order, what feedparser 6.0's strict
(SAX) parser does with the elements and attributes modelled here, with the same state:

- The bytes are decoded as feedparser decodes them when there are no HTTP headers (a BOM, else the
  encoding the XML declaration names, else UTF-8) and re-encoded as UTF-8 under a new declaration,
  so that lxml parses the very bytes feedparser's parser would.
- Element names are feedparser's: its own prefix for a namespace it knows, else the first prefix
  the document bound to the namespace, lower-cased; a prefix once bound to a known namespace keeps
  that meaning. An attribute appears under feedparser's prefix and again under the document's.
- xml:base and xml:lang are tracked as feedparser tracks them (a base set below an element whose
  own base is empty outlives the element that set it).
- An element's text goes through feedparser's ``pop``: stripped; ``link`` and ``id`` resolved
  against the base; a plain-text field of a non-Atom feed that looks like HTML retyped as HTML;
  text that decodes as UTF-8 once encoded as Latin-1 decoded again; C1 controls read as
  windows-1252. Then it is stored feedparser's way: a deeper duplicate does not replace a value,
  the first non-empty title wins, a description seen after a summary (with no content yet) becomes
  the content, a content is copied to an absent summary, a GUID that is a permalink is the link
  unless one came first, and the last author's name and e-mail make the author.
- Dates are the RFC 822 and W3C forms that feedparser's first two date handlers read, computed as
  they compute them.

Whenever a document leaves that model, ``parse_fast`` returns None and the caller runs feedparser:
bytes that are not well-formed XML, that do not decode in the encoding they declare (feedparser
would guess another and flag the feed) or that carry a DOCTYPE; names that are not ASCII (libxml2
and expat disagree on which are names); RSS 0.90, Atom 0.3 and unknown formats; an element
feedparser handles that is not modelled (georss, an image inside an item, ...); markup nested in a
text field (other than XHTML content); content types other than text, HTML and XHTML; a date in
any other form. Declining costs only time, so the model stays small and exact: the differential
tests in test_doc_fastfeed hold it to feedparser.

Hostile input costs linear time before it is declined: lxml resolves no entity, loads no DTD and
keeps libxml2's limits on nesting and text size, and where feedparser's regular expressions
backtrack quadratically on crafted input, the same results are computed in linear time here.

``to_articles`` turns feedparser-shaped entries into Articles by the rules in feedfile's docstring.
Both paths end in it, so they can only differ in the entries they read.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import html.entities
import importlib
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.documents.dates import from_struct_time
from monitor.documents.html import html_to_text
from monitor.documents.urls import web_url
from monitor.models import Article

# lxml ships no type information, and its stubs are not a dependency: its module is typed Any here,
# at the one place it enters, instead of silencing the checker at each use.
_etree: Any = importlib.import_module("lxml.etree")

__all__ = ["parse_fast", "to_articles"]

# -- From Articles' point of view: the mapping both paths share --------------------------------

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def to_articles(feed_language: Any, entries: Iterable[Any]) -> list[Article]:
    """One Article per feedparser-shaped entry (plain dicts, or feedparser's own), stubs dropped.

    A malformed feed can leave a stub entry (an item cut off before its first complete element):
    with no text at all there is nothing to match or to show.
    """
    language = _text(feed_language)
    articles = (_article(entry, language) for entry in entries)
    return [article for article in articles if article.title or article.summary or article.body]


def _article(entry: Any, feed_language: str | None) -> Article:
    title = _detailed_text(_get(entry, "title"), _get(entry, "title_detail"))
    content, content_language, raw_content = _content(_get(entry, "content"))
    raw_summary = _get(entry, "summary")
    summary = ""
    if raw_summary != raw_content:  # else the summary only repeats the body
        summary = _detailed_text(raw_summary, _get(entry, "summary_detail"))
        if summary == content:
            summary = ""
    return Article(
        title=title,
        body=content,
        summary=summary,
        url=web_url(_get(entry, "link")),
        author=_text(_get(entry, "author")),
        published=from_struct_time(_get(entry, "published_parsed"))
        or from_struct_time(_get(entry, "updated_parsed")),
        tags=_tags(_get(entry, "tags")),
        language=feed_language or content_language,
        guid=_text(_get(entry, "id")),
    )


def _content(contents: Any) -> tuple[str, str | None, str | None]:
    """The text of the first non-empty content, its language and its value as given."""
    if not isinstance(contents, list):
        return "", None, None
    for content in contents:
        if not isinstance(content, dict):
            continue
        raw = _get(content, "value")
        text = _detailed_text(raw, content)
        if text:
            return text, _text(_get(content, "language")), raw
    return "", None, None


def _detailed_text(value: Any, detail: Any) -> str:
    """A feedparser value as plain text, converted from HTML when its detail says it is HTML."""
    text = _text(value) or ""
    kind = _get(detail, "type")
    return html_to_text(text) if kind in _HTML_TYPES else text.strip()


def _tags(tags: Any) -> tuple[str, ...]:
    if not isinstance(tags, list):
        return ()
    terms = (_text(_get(tag, "term")) for tag in tags if isinstance(tag, dict))
    return tuple(dict.fromkeys(term for term in terms if term))


def _get(mapping: Any, key: str) -> Any:
    """``mapping[key]`` read as a plain dict: FeedParserDict's own lookups add aliases (such as
    ``updated_parsed`` falling back to ``published_parsed``) that warn and blur what the feed said.
    """
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _text(value: Any) -> str | None:
    """A feedparser value that should be a string, stripped; anything else is absent."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _words(text: str) -> frozenset[str]:
    """The names in a text of names separated by spaces (long lists read best as text)."""
    return frozenset(text.split())


# -- feedparser's tables ------------------------------------------------------------------------
# Copied from feedparser 6.0 (mixin.py, sanitizer.py, urls.py, api.py); the tests compare each
# with the installed feedparser, so an upgrade that changes one fails them rather than drifting.

NAMESPACES: dict[str, str] = {
    uri.lower(): prefix
    for uri, prefix in {
        "": "",
        "http://backend.userland.com/rss": "",
        "http://blogs.law.harvard.edu/tech/rss": "",
        "http://purl.org/rss/1.0/": "",
        "http://my.netscape.com/rdf/simple/0.9/": "",
        "http://example.com/newformat#": "",
        "http://example.com/necho": "",
        "http://purl.org/echo/": "",
        "uri/of/echo/namespace#": "",
        "http://purl.org/pie/": "",
        "http://purl.org/atom/ns#": "",
        "http://www.w3.org/2005/Atom": "",
        "http://purl.org/rss/1.0/modules/rss091#": "",
        "http://webns.net/mvcb/": "admin",
        "http://purl.org/rss/1.0/modules/aggregation/": "ag",
        "http://purl.org/rss/1.0/modules/annotate/": "annotate",
        "http://media.tangent.org/rss/1.0/": "audio",
        "http://backend.userland.com/blogChannelModule": "blogChannel",
        "http://creativecommons.org/ns#license": "cc",
        "http://web.resource.org/cc/": "cc",
        "http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html": "creativeCommons",
        "http://backend.userland.com/creativeCommonsRssModule": "creativeCommons",
        "http://purl.org/rss/1.0/modules/company": "co",
        "http://purl.org/rss/1.0/modules/content/": "content",
        "http://my.theinfo.org/changed/1.0/rss/": "cp",
        "http://purl.org/dc/elements/1.1/": "dc",
        "http://purl.org/dc/terms/": "dcterms",
        "http://purl.org/rss/1.0/modules/email/": "email",
        "http://purl.org/rss/1.0/modules/event/": "ev",
        "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
        "http://freshmeat.net/rss/fm/": "fm",
        "http://xmlns.com/foaf/0.1/": "foaf",
        "http://www.w3.org/2003/01/geo/wgs84_pos#": "geo",
        "http://www.georss.org/georss": "georss",
        "http://www.opengis.net/gml": "gml",
        "http://postneo.com/icbm/": "icbm",
        "http://purl.org/rss/1.0/modules/image/": "image",
        "http://www.itunes.com/DTDs/PodCast-1.0.dtd": "itunes",
        "http://example.com/DTDs/PodCast-1.0.dtd": "itunes",
        "http://purl.org/rss/1.0/modules/link/": "l",
        "http://search.yahoo.com/mrss": "media",
        "http://search.yahoo.com/mrss/": "media",
        "http://madskills.com/public/xml/rss/module/pingback/": "pingback",
        "http://prismstandard.org/namespaces/1.2/basic/": "prism",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
        "http://www.w3.org/2000/01/rdf-schema#": "rdfs",
        "http://purl.org/rss/1.0/modules/reference/": "ref",
        "http://purl.org/rss/1.0/modules/richequiv/": "reqv",
        "http://purl.org/rss/1.0/modules/search/": "search",
        "http://purl.org/rss/1.0/modules/slash/": "slash",
        "http://schemas.xmlsoap.org/soap/envelope/": "soap",
        "http://purl.org/rss/1.0/modules/servicestatus/": "ss",
        "http://hacks.benhammersley.com/rss/streaming/": "str",
        "http://purl.org/rss/1.0/modules/subscription/": "sub",
        "http://purl.org/rss/1.0/modules/syndication/": "sy",
        "http://schemas.pocketsoap.com/rss/myDescModule/": "szf",
        "http://purl.org/rss/1.0/modules/taxonomy/": "taxo",
        "http://purl.org/rss/1.0/modules/threading/": "thr",
        "http://purl.org/rss/1.0/modules/textinput/": "ti",
        "http://madskills.com/public/xml/rss/module/trackback/": "trackback",
        "http://wellformedweb.org/commentAPI/": "wfw",
        "http://purl.org/rss/1.0/modules/wiki/": "wiki",
        "http://www.w3.org/1999/xhtml": "xhtml",
        "http://www.w3.org/1999/xlink": "xlink",
        "http://www.w3.org/XML/1998/namespace": "xml",
        "http://podlove.org/simple-chapters": "psc",
    }.items()
}
"""feedparser's known namespaces (lower-cased URI -> its prefix for their elements)."""

HANDLED_NAMES = _words(
    """abstract author body category cc_license channel cloud content content_encoded contributor
    copyright created creativeCommons_license creativecommons_license dc_author dc_contributor
    dc_creator dc_date dc_description dc_language dc_publisher dc_rights dc_subject dc_title
    dcterms_created dcterms_issued dcterms_modified dcterms_valid description email enclosure entry
    expirationdate feed feedburner_browserfriendly fullitem generator geom georss_box georss_line
    georss_point georss_polygon georss_where georssgeom gml_exterior gml_linearring gml_linestring
    gml_point gml_polygon gml_pos gml_poslist guid height homepage id image info issued item
    itunes_author itunes_block itunes_category itunes_email itunes_explicit itunes_image
    itunes_keywords itunes_link itunes_name itunes_owner itunes_subtitle itunes_summary keywords
    language lastbuilddate link managingeditor media_category media_content media_credit
    media_description media_group media_keywords media_license media_player media_rating
    media_restriction media_thumbnail media_title modified name newlocation psc_chapter
    psc_chapters pubdate published rights rss source subtitle summary tagline tags textInput
    textinput title updated uri url webmaster where width xhtml_body"""
)
"""Names of elements feedparser has a handler for (its ``_start_`` and ``_end_`` methods)."""

LOOKS_LIKE_HTML_ELEMENTS = _words(
    """a abbr acronym address area article aside audio b big blockquote br button canvas caption
    center cite code col colgroup command datagrid datalist dd del details dfn dialog dir div dl dt
    em event-source fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 header hr i img
    input ins kbd keygen label legend li m map menu meter multicol nav nextid noscript ol optgroup
    option output p pre progress q s samp section select small sound source spacer span strike
    strong sub sup table tbody td textarea tfoot th thead time tr tt u ul var video"""
)
"""The tags a plain-text field may use and still look like HTML to feedparser."""

ACCEPTABLE_URI_SCHEMES = _words(
    """file ftp gopher h323 hdl http https imap magnet mailto mms news nntp prospero rsync rtsp
    rtspu sftp shttp sip sips snews svn svn+ssh telnet wais aim callto cvs facetime feed git gtalk
    irc ircs irc6 itms msnim skype ssh smb ymsg"""
)
"""The URI schemes feedparser lets a base URI have."""

_CAN_BE_RELATIVE = frozenset({"link", "id"})  # of feedparser's list, the ones read here
_USERLAND = "http://backend.userland.com/rss"
_XHTML = "http://www.w3.org/1999/xhtml"
_ITUNES_SCHEME = "http://www.itunes.com/"
_MEDIA_CATEGORY_SCHEME = "http://search.yahoo.com/mrss/category_schema"
_TEXT_TYPES = frozenset({"text/plain", "text/html", "application/xhtml+xml"})
_CONTENT_TYPE_ALIASES = {
    "text": "text/plain",
    "plain": "text/plain",
    "html": "text/html",
    "xhtml": "application/xhtml+xml",
}
_VERSIONS = frozenset({"rss091u", "rss092", "rss093", "rss094", "rss20", "rss", "rss10", "atom10"})
# Characters 0x80-0x9f read as windows-1252 (five have no meaning there and stay).
_CP1252 = {
    code: char
    for code in range(0x80, 0xA0)
    if len(char := bytes([code]).decode("cp1252", errors="ignore")) == 1
}
# Keys of an entry or feed dict that feedparser's handlers or to_articles use, and the aliases
# FeedParserDict stores under them: an element feedparser keeps under its own name, when named like
# one of them, would write over it.
_RESERVED = _words(
    """title title_detail summary summary_detail content link links author authors author_detail
    published_parsed updated_parsed tags id guidislink language image textinput source contributors
    publisher_detail where generator_detail media_thumbnail media_content media_credit media_rating
    media_restriction media_license media_player psc_chapters description description_detail guid
    date_parsed modified_parsed issued_parsed"""
)

_XML_DECLARATION = re.compile(r"^<\?xml[^>]*?>")
_UTF8_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>"
_UNICODE_ALIASES = _words(
    """u16 utf-16 utf16 utf_16 u32 utf-32 utf32 utf_32 iso-10646-ucs-2 iso-10646-ucs-4 csucs4
    csunicode ucs-2 ucs-4"""
)
_PROLOG_END = re.compile(rb"<\w")
_NON_ASCII_TARGET = re.compile(rb"<\?[^\s?]*[\x80-\xff]")
_DECLARATIONS = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_URI_FIXER = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_LINK_ENTITY = re.compile(r"&([A-Za-z0-9_]+);")
_CLOSE_TAG = re.compile(r"</(\w+)>")
_ANY_ENTITY = re.compile(r"&#?\w+;")
_ANY_TAG = re.compile(r"</?(\w+)")
_NAMED_ENTITY = re.compile(r"&(\w+);")
# feedparser's e-mail pattern, searched in quadratic time along a run of the characters before "@".
# Its leftmost match always starts where such a run starts (any later start reaches the same "@"),
# so the look-behind skips the other starts without changing the match.
_EMAIL = re.compile(
    r"(?<![a-zA-Z0-9_\-.+])"
    r"(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"
    r"([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"
)
# feedparser's Perforce date handler indexes a list with the month: past 12, it raises out of
# feedparser.parse. A date it would reach with such a month is left to feedparser to fail on.
_PERFORCE_DATE = re.compile(r"\w{,3}, \d{,4}/(\d{,2})/\d{2} \d{,2}:\d{2}:\d{2} \w{,3}")


class _Decline(Exception):
    """The document leaves the model: feedparser must read it."""


def _ascii_name(name: str) -> str:
    """``name``, when both XML parsers agree that it is one.

    libxml2 takes names by the rules of XML 1.0's fifth edition, which allow most of Unicode;
    feedparser's expat keeps to the older, narrower list and rejects the document, which feedparser
    then reads with its lenient parser instead. Feeds name their elements in ASCII.
    """
    if not name.isascii():
        raise _Decline
    return name


# -- Bytes -> the UTF-8 document feedparser parses ------------------------------------------------


def _utf8_document(data: bytes) -> bytes:
    """The bytes feedparser hands its XML parser (feedparser's convert_to_utf8 without headers)."""
    bom = ""
    for mark, encoding in (
        (codecs.BOM_UTF32_BE, "utf-32be"),
        (codecs.BOM_UTF32_LE, "utf-32le"),
        (codecs.BOM_UTF16_BE, "utf-16be"),
        (codecs.BOM_UTF16_LE, "utf-16le"),
        (codecs.BOM_UTF8, "utf-8"),
    ):
        if data.startswith(mark):
            bom, data = encoding, data[len(mark) :]
            break
    else:
        bom = {
            b"\x4c\x6f\xa7\x94": "cp037",
            b"\x00\x3c\x00\x3f": "utf-16be",
            b"\x3c\x00\x3f\x00": "utf-16le",
            b"\x00\x00\x00\x3c": "utf-32be",
            b"\x3c\x00\x00\x00": "utf-32le",
        }.get(data[:4], "")
    try:
        declared = _declared_encoding(data.decode(bom).encode("utf-8") if bom else data)
    except (LookupError, ValueError):
        raise _Decline from None  # a BOM that lies, or a declared name that is not even UTF-8
    if bom and declared in _UNICODE_ALIASES:
        declared = bom
    encoding = "gb18030" if declared == "gb2312" else declared or "utf-8"
    try:
        text = data.decode(encoding)
        if _XML_DECLARATION.search(text):
            text = _XML_DECLARATION.sub(_UTF8_DECLARATION, text)
        else:
            text = _UTF8_DECLARATION + "\n" + text
        document = text.encode("utf-8")
    except (LookupError, ValueError):
        # feedparser would try other encodings and flag the feed as malformed.
        raise _Decline from None
    prolog_end = _PROLOG_END.search(document)
    if _DECLARATIONS.search(document, 0, prolog_end.start() if prolog_end else len(document)):
        # feedparser strips a DOCTYPE and keeps some entities; lxml would resolve neither.
        raise _Decline
    if _NON_ASCII_TARGET.search(document):
        raise _Decline  # see _ascii_name; lxml drops processing instructions before they are seen
    return document


def _declared_encoding(document: bytes) -> str:
    r"""The encoding feedparser finds declared in ``document``, lower-cased ("" for none).

    feedparser matches ``^<\?.*encoding=['"](.*?)['"].*\?>`` on the first line, which backtracks
    in quadratic time over a long line of quotes. This finds the same value in linear time: the
    last ``encoding=`` followed by a quote, with the value up to the first quote before the last
    ``?>``; failing that, the ``encoding=`` before it, and so on.
    """
    line = document.split(b"\n", 1)[0]
    end = line.rfind(b"?>")
    if not line.startswith(b"<?") or end < 0:
        return ""
    searched, first = end, -1  # the first quote in line[searched:end] (-1: none)
    at = line.rfind(b"encoding=")
    while at >= 2:
        start = at + len(b"encoding=") + 1
        if start < end and line[start - 1] in b"'\"":
            quotes = (line.find(b"'", start, searched), line.find(b'"', start, searched))
            first = min((i for i in quotes if i >= 0), default=first)
            searched = start
            if first >= 0:
                return line[start:first].decode("utf-8").lower()
        at = line.rfind(b"encoding=", 0, at)
    return ""


_PARSERS = threading.local()


def _parser() -> Any:
    """This thread's XML parser: an lxml parser must not be shared between threads.

    No entity is resolved and no DTD or network resource loaded; without ``huge_tree``, libxml2
    refuses nesting deeper than 256 elements and text nodes over 10 MB. Comments and processing
    instructions go: feedparser ignores them, and their text around them then reads as one.
    """
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = _etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
        )
    return parser


# -- feedparser's text, URL and date functions --------------------------------------------------


def _escape(text: str) -> str:
    """xml.sax.saxutils.escape, as feedparser applies it to XHTML text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _urljoin(base: str, uri: str) -> str:
    uri = _URI_FIXER.sub(r"\1\3", uri)
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


@functools.lru_cache(maxsize=256)
def _next_base(base: str, given: str | None) -> str:
    """The base URI inside an element, from the enclosing one and the element's xml:base.

    feedparser recomputes it at every element, joining the base even to itself, and keeps the
    enclosing base rather than take one whose scheme it does not accept (its
    make_safe_absolute_uri). A feed has few distinct bases, hence the cache.
    """
    given = given or base
    if not base:
        return _urljoin(base, given)
    joined = _urljoin(base, given)
    return joined if joined.strip().split(":", 1)[0] in ACCEPTABLE_URI_SCHEMES else base


def _content_type(kind: str) -> str:
    kind = kind.lower()
    return _CONTENT_TYPE_ALIASES.get(kind, kind)


def _looks_like_html(text: str) -> bool:
    if not (_CLOSE_TAG.search(text) or _ANY_ENTITY.search(text)):
        return False
    if any(tag.lower() not in LOOKS_LIKE_HTML_ELEMENTS for tag in _ANY_TAG.findall(text)):
        return False
    return all(name in html.entities.entitydefs for name in _NAMED_ENTITY.findall(text))


def _repair_text(text: str) -> str:
    """feedparser's last touches to every text: UTF-8 read as Latin-1 is read again, and C1
    controls become the windows-1252 characters they usually stand for."""
    if text.isascii():
        return text  # both are no-ops on ASCII
    with contextlib.suppress(UnicodeError):
        text = text.encode("iso-8859-1").decode("utf-8")
    return text.translate(_CP1252)


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_ZONES = {"ut": 0, "gmt": 0, "z": 0, "utc": 0}
_ZONES.update({"edt": -4, "est": -5, "cdt": -5, "cst": -6, "mdt": -6, "mst": -7})
_ZONES.update({"pdt": -7, "pst": -8})
# The forms read here, chosen so that feedparser's W3C-DTF handler (tried first) reads the second
# and declines the first, and its RFC 822 handler (tried next) reads the first: either way the
# computation below is that handler's.
_RFC822_DATE = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun), )?(\d{1,2}) "
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec) (\d{4}) "
    r"(\d{2}):(\d{2})(?::(\d{2}))? ([+-]\d{4}|ut|gmt|z|utc|[ecmp][sd]t)",
    re.IGNORECASE | re.ASCII,
)
_W3C_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:t(\d{2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?(z|[+-]\d{2}:?\d{2})?)?",
    re.IGNORECASE | re.ASCII,
)


def _parse_date(text: str) -> time.struct_time | None:
    """What feedparser's ``_parse_date`` gives for ``text``; declines forms not modelled."""
    if not text:
        return None
    if match := _RFC822_DATE.fullmatch(text):
        day, month, year, hour, minute, second, zone = match.groups()
        zone = zone.lower()
        if zone[0] in "+-":
            sign = -1 if zone[0] == "-" else 1
            zone_hours, zone_minutes = sign * int(zone[1:3]), sign * int(zone[3:])
        else:
            zone_hours, zone_minutes = _ZONES[zone], 0
        fields = (int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute))
        seconds = int(second or 0)
    elif match := _W3C_DATE.fullmatch(text):
        year, month, day, hour, minute, second, zone = match.groups()
        zone = (zone or "").lower()
        if zone[:1] in ("+", "-"):
            sign = -1 if zone[0] == "-" else 1
            # [4:] as feedparser slices it: right for "+05:30", a digit short for "+0530".
            zone_hours, zone_minutes = sign * int(zone[1:3]), sign * int(zone[4:])
        else:
            zone_hours, zone_minutes = 0, 0
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0))
        seconds = int(float(second or 0))
    else:
        raise _Decline
    try:
        stamp = datetime(*fields, seconds, tzinfo=UTC)
        return (stamp - timedelta(hours=zone_hours, minutes=zone_minutes)).utctimetuple()
    except (ValueError, OverflowError):
        # feedparser's later handlers might still read it (some normalise a 31 February).
        raise _Decline from None


def _check_date(text: str) -> None:
    """Decline a date whose value is not used but which would make feedparser fail."""
    try:
        _parse_date(text)
    except _Decline:
        match = _PERFORCE_DATE.search(text)
        if match and match.group(1).isdigit() and int(match.group(1)) > 12:
            raise


# -- The model -----------------------------------------------------------------------------------


def _attributes(element: Any) -> dict[str, str]:
    """The element's attributes as feedparser's strict parser names them.

    A namespaced attribute appears under feedparser's prefix for its namespace (none when it does
    not know the namespace), then again under the document's own prefix; ``rel`` and ``type``
    values are lower-cased.
    """
    items: list[tuple[str, str]] = element.items()
    if not items:
        return {}
    attrs: dict[str, str] = {}
    qualified: list[tuple[str, str]] = []
    for name, value in items:
        if name[0] == "{":
            uri, _, local = name[1:].partition("}")
            local = _ascii_name(local)
            prefix = NAMESPACES.get(uri.lower(), "")
            attrs[(f"{prefix}:{local}" if prefix else local).lower()] = value
            qualified.append((f"{_attribute_prefix(element, uri)}:{local}".lower(), value))
        else:
            attrs[_ascii_name(name).lower()] = value
            qualified.append((name.lower(), value))
    attrs.update(qualified)
    if any(key == "xmlns" or key.startswith("xmlns:") for key in attrs):
        raise _Decline  # feedparser would take it for a namespace declaration
    for key in ("rel", "type"):
        if key in attrs:
            attrs[key] = attrs[key].lower()
    return attrs


def _attribute_prefix(element: Any, uri: str) -> str:
    """The prefix the document gave a namespaced attribute (lxml keeps only the namespace)."""
    if uri == "http://www.w3.org/XML/1998/namespace":
        return "xml"
    prefixes = [prefix for prefix, bound in element.nsmap.items() if prefix and bound == uri]
    if len(prefixes) != 1:
        raise _Decline
    prefix: str = prefixes[0]
    return prefix


class _Entry:
    """The state feedparser keeps for the entry being read."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.depths: dict[str, int] = {}  # depth each field was stored from
        self.tags: list[list[str | None]] = []  # [term, scheme, label]
        self.tag_keys: set[tuple[str | None, str | None, str | None]] = set()  # seen, for speed
        self.authors: list[dict[str, str]] = []
        self.title_depth = -1
        self.guid_is_link = False

    def result(self) -> dict[str, Any]:
        if self.tags:
            self.data["tags"] = [{"term": term} for term, _, _ in self.tags]
        return self.data


class _Unit:
    """An element whose value needs its children: an Atom author, XHTML content."""

    def __init__(self, element: Any, key: str, depth: int, params: dict[str, Any] | None) -> None:
        self.element = element
        self.key = key
        self.depth = depth
        self.params = params
        self.children: list[tuple[str, Any]] = []


_AUTHOR_PARTS = frozenset({"name", "email", "uri", "url", "homepage"})


class _Reader:
    """Replays feedparser's handlers over lxml's events (see the module docstring)."""

    def __init__(self, base_url: str) -> None:
        self.depth = 0
        self.base = base_url
        self.bases: list[str] = []
        self.lang: str | None = None
        self.langs: list[str | None] = []
        self.version = ""
        self.prefix_map: dict[str | None, str] = {}  # document prefix -> feedparser's prefix
        self.namespaces: dict[str, str] = {}  # feedparser's or document prefix -> URI
        self.names: dict[str, tuple[str, str]] = {}  # cache of _names, cleared on a declaration
        self.generation = 0  # declarations seen so far
        self.open: list[tuple[str, int]] = []  # key and generation of each open element
        self.root = ""
        self.feed_language: str | None = None
        self.entry: _Entry | None = None
        # feedparser's hasContent: set by a content, cleared at the end of an item only.
        self.has_content = False
        self.feed_summary = False  # whether a summary was stored outside entries
        self.entries: list[dict[str, Any]] = []
        self.unit: _Unit | None = None
        self.entry_actions: dict[str, Callable[[Any, str, dict[str, str]], None]] = {}
        for keys, action in (
            ("title dc_title media_title", self._title),
            ("description dc_description media_description", self._description),
            ("summary itunes_summary", self._summary),
            ("content", self._content),
            ("content_encoded fullitem", self._content_encoded),
            ("link", self._link),
            ("guid id", self._guid),
            ("pubdate published issued dcterms_issued", self._published),
            ("updated modified lastbuilddate dc_date dcterms_modified", self._updated),
            ("created dcterms_created expirationdate", self._other_date),
            ("category keywords dc_subject media_category itunes_category", self._category),
            ("media_keywords itunes_keywords", self._keywords),
            ("author dc_creator dc_author itunes_author managingeditor", self._author),
            ("source", self._source),
            (_HARMLESS_LEAVES, self._leaf),
            ("media_content media_group enclosure contributor", self._container),
        ):
            self.entry_actions.update(dict.fromkeys(keys.split(), action))

    # Events

    def read(self, root: Any) -> tuple[str | None, list[dict[str, Any]]]:
        for event, node in _etree.iterwalk(root, events=("start-ns", "start", "end")):
            if event == "start":
                self._start(node)
            elif event == "end":
                self._end(node)
            else:
                self._declare(*node)
        if self.version not in _VERSIONS:
            raise _Decline
        return self.feed_language, self.entries

    def _declare(self, prefix: str, uri: str) -> None:
        """feedparser's startPrefixMapping and track_namespace."""
        if prefix == "xml" or (prefix and uri == "http://www.w3.org/1999/xlink"):
            raise _Decline  # feedparser passes an xlink prefix on as an attribute
        _ascii_name(prefix)
        if not uri:
            return
        lower = uri.lower()
        if not self.version:
            if not prefix and lower == "http://my.netscape.com/rdf/simple/0.9/":
                self.version = "rss090"
            elif lower == "http://purl.org/rss/1.0/":
                self.version = "rss10"
            elif lower == "http://www.w3.org/2005/atom":
                self.version = "atom10"
        if "backend.userland.com/rss" in lower:
            uri = lower = _USERLAND
        if lower in NAMESPACES:
            self.prefix_map[prefix or None] = NAMESPACES[lower]
            self.namespaces[NAMESPACES[lower]] = uri
        else:
            self.namespaces[prefix or ""] = uri
        self.names.clear()
        self.generation += 1

    def _names(self, tag: str, *, end: bool = False) -> tuple[str, str]:
        """feedparser's tag for an element (``dc:creator``) and its handler key (``dc_creator``)."""
        cached = None if end else self.names.get(tag)
        if cached:
            return cached
        uri, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        local = _ascii_name(local)
        lower = uri.lower()
        if not end and "backend.userland.com/rss" in lower:
            uri = lower = _USERLAND
        prefix = NAMESPACES.get(lower)
        if prefix:
            name = f"{prefix}:{local}"
        elif uri:
            name = next(
                (f"{p}:{local}" for p, u in self.namespaces.items() if p and u == uri), local
            )
        else:
            name = local
        name = name.lower()
        prefix, colon, suffix = name.partition(":")
        if not colon:
            prefix, suffix = "", name
        mapped = self.prefix_map.get(prefix, prefix)
        names = (name, f"{mapped}_{suffix}" if mapped else suffix)
        if not end:
            self.names[tag] = names
        return names

    def _start(self, element: Any) -> None:
        self.depth += 1
        tag, key = self._names(element.tag)
        attrs = _attributes(element)
        self._enter_scope(tag, attrs)
        self.open.append((key, self.generation))
        if self.unit is not None:
            self._unit_child(element, key)
        elif self.depth == 1:
            self._start_root(key, attrs)
        elif self.entry is not None:
            action = self.entry_actions.get(key) or self._unknown(key)
            action(element, key, attrs)
        else:
            self._start_feed_child(element, key, attrs)

    def _end(self, element: Any) -> None:
        key, generation = self.open.pop()
        if generation != self.generation and self._names(element.tag, end=True)[1] != key:
            raise _Decline  # a declaration inside changed what feedparser calls its end
        unit = self.unit
        if unit is not None and unit.depth == self.depth:
            self.unit = None
            if unit.params is None:
                self._end_author(unit)
            else:
                self._end_markup(unit)
        elif self.entry is not None and key in ("item", "entry") and self.depth == self._item_depth:
            self.entries.append(self.entry.result())
            self.entry = None
            self.has_content = False
        # feedparser's unknown_endtag: back to the enclosing base (unless it is empty) and language.
        self.bases.pop()
        if self.bases and self.bases[-1]:
            self.base = self.bases[-1]
        self.langs.pop()
        if self.langs:
            self.lang = self.langs[-1]
        self.depth -= 1

    def _enter_scope(self, tag: str, attrs: dict[str, str]) -> None:
        """feedparser's unknown_starttag: xml:base and xml:lang."""
        self.base = _next_base(self.base, attrs.get("xml:base", attrs.get("base")))
        lang = attrs.get("xml:lang", attrs.get("lang"))
        if lang == "":
            lang = None
        elif lang is None:
            lang = self.lang
        if lang and tag in ("feed", "rss"):
            self.feed_language = lang.replace("_", "-")
        self.lang = lang
        self.bases.append(self.base)
        self.langs.append(lang)

    # Outside entries

    @property
    def _item_depth(self) -> int:
        return 3 if self.root == "rss" else 2

    def _start_root(self, key: str, attrs: dict[str, str]) -> None:
        self.root = key
        if key == "rss":
            if not self.version.startswith("rss"):
                given = attrs.get("version", "")
                versions = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
                self.version = versions.get(given) or ("rss20" if given.startswith("2.") else "rss")
        elif key == "feed":
            if not self.version:
                versions = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
                self.version = versions.get(attrs.get("version", ""), "atom")
        elif key != "rdf_rdf":
            raise _Decline

    def _start_feed_child(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        parent = self.open[-2][0]
        if key in ("item", "entry"):
            expected = {"rss": "channel", "rdf_rdf": "rdf_rdf", "feed": "feed"}[self.root]
            if parent != expected or self.depth != self._item_depth:
                raise _Decline
            if (key == "entry") != (self.root == "feed"):
                raise _Decline
            self._start_item(attrs)
        elif key == "channel":
            if self.depth != 2 or self.root == "feed" or "lastmod" in attrs or "href" in attrs:
                raise _Decline
        elif key in ("language", "dc_language"):
            # Stored as the feed's language only right under the channel or the feed.
            if not (parent == "channel" or (parent == "feed" and self.depth == 2)):
                raise _Decline
            self.feed_language = self._pop(key, _leaf_text(element), None)
        elif key in _DATES:
            _check_date(self._pop(key, _leaf_text(element), None))
        elif key in _SUMMARIES or key in _DESCRIPTIONS:
            # Once a summary is stored, the next one (or description) is read as a content,
            # and that content's hasContent flag would carry into the first entry.
            _leaf_text(element)
            if self.feed_summary and not self.has_content:
                raise _Decline
            self.feed_summary = self.feed_summary or key in _SUMMARIES
        elif key in _CONTENTS:
            _leaf_text(element)
            self.has_content = self.feed_summary = True
        elif key in _FEED_LEAVES:
            _leaf_text(element)
        elif key not in _FEED_CONTAINERS:
            self._unknown(key)

    def _start_item(self, attrs: dict[str, str]) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise _Decline  # feedparser reads these as the entry's date and link
        self.entry = _Entry()
        rdf = self.prefix_map.get("rdf", "rdf")
        if about := attrs.get(f"{rdf}:about"):
            self.entry.data["id"] = about

    def _unknown(self, key: str) -> Callable[[Any, str, dict[str, str]], None]:
        """An element feedparser keeps as is, under its key, unless it has a handler for it."""
        if key in HANDLED_NAMES or key in _RESERVED:
            raise _Decline
        return self._container

    # Entries: feedparser's push, push_content, pop and the handlers modelled

    def _container(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        """Nothing to do: its children are read in turn."""

    def _leaf(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        _leaf_text(element)

    def _push_content(self, attrs: dict[str, str], default_type: str) -> dict[str, Any]:
        kind = _content_type(attrs.get("type", default_type))
        if "mode" in attrs or kind not in _TEXT_TYPES:
            raise _Decline  # base64 and other modes and types of Atom 0.3 and beyond
        if self.lang:
            self.lang = self.lang.replace("_", "-")
        return {"type": kind, "language": self.lang}

    def _pop(self, element: str, text: str, params: dict[str, Any] | None) -> str:
        assert self.entry is not None or element not in _CAN_BE_RELATIVE
        output = text.strip()
        if element in _CAN_BE_RELATIVE and output:
            assert self.entry is not None
            if element != "id" or self.entry.guid_is_link:
                output = _urljoin(self.base or "", output)
        if (
            params is not None
            and params["type"] == "text/plain"
            and not self.version.startswith("atom")
            and _looks_like_html(output)
        ):
            params["type"] = "text/html"
        return _repair_text(output)

    def _store(self, element: str, output: str, params: dict[str, Any] | None) -> None:
        entry = self._current
        if element == "description":
            element = "summary"
        previous = entry.depths.get(element)
        if previous is None or self.depth <= previous:
            entry.depths[element] = self.depth
            entry.data[element] = output
        if params is not None:
            entry.data[f"{element}_detail"] = {**params, "value": output}

    @property
    def _current(self) -> _Entry:
        assert self.entry is not None
        return self.entry

    def _text_field(self, element: Any, key: str, params: dict[str, Any]) -> str | None:
        """The text of a leaf, or None when XHTML markup makes it a unit read at its end."""
        if len(element):
            if params["type"] != "application/xhtml+xml":
                raise _Decline  # feedparser would retype it as XHTML mid-way
            self.unit = _Unit(element, key, self.depth, params)
            return None
        text = element.text or ""
        return _escape(text) if params["type"] == "application/xhtml+xml" else text

    def _title(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        params = self._push_content(attrs, "text/plain")
        name = "media_title" if key == "media_title" else "title"
        text = self._text_field(element, name, params)
        if text is not None:
            self._end_title(self._pop(name, text, params), params, media=name == "media_title")

    def _end_title(self, output: str, params: dict[str, Any], *, media: bool) -> None:
        """The first non-empty title wins, unless a later one is shallower; a media:title never
        blocks the next."""
        entry = self._current
        if not -1 < entry.title_depth <= self.depth:
            self._store("title", output, params)
        if output and not media:
            entry.title_depth = self.depth

    def _description(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        if "summary" in self._current.data and not self.has_content:
            self._content(element, key, attrs)
        else:
            self._text_element(element, "description", attrs, "text/html")

    def _summary(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        if "summary" in self._current.data and not self.has_content:
            self._content(element, key, attrs)
        else:
            self._text_element(element, "summary", attrs, "text/plain")

    def _text_element(self, element: Any, name: str, attrs: dict[str, str], default: str) -> None:
        params = self._push_content(attrs, default)
        text = self._text_field(element, name, params)
        if text is not None:
            self._store(name, self._pop(name, text, params), params)

    def _content(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        self._start_content(element, attrs, "text/plain")

    def _content_encoded(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        self._start_content(element, attrs, "text/html")

    def _start_content(self, element: Any, attrs: dict[str, str], default: str) -> None:
        self.has_content = True
        params = self._push_content(attrs, default)
        text = self._text_field(element, "content", params)
        if text is not None:
            self._end_content(self._pop("content", text, params), params)

    def _end_content(self, output: str, params: dict[str, Any]) -> None:
        data = self._current.data
        data.setdefault("content", []).append({**params, "value": output})
        data.setdefault("summary", output)  # all the types modelled are copied

    def _end_markup(self, unit: _Unit) -> None:
        """The end of an XHTML field: its markup as feedparser rebuilds it, then its usual end."""
        assert unit.params is not None
        pieces = [_escape(unit.element.text or "")]
        for child in unit.element:
            pieces.extend(_markup(child))
            pieces.append(_escape(child.tail or ""))
        pieces = [piece for piece in pieces if piece]
        if self.version == "atom10":
            pieces = _unwrap_div(pieces)
        output = self._pop(unit.key, "".join(pieces), unit.params)
        if unit.key in ("title", "media_title"):
            self._end_title(output, unit.params, media=unit.key == "media_title")
        elif unit.key == "content":
            self._end_content(output, unit.params)
        else:
            self._store(unit.key, output, unit.params)

    def _link(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        text = _leaf_text(element)
        attrs = dict(attrs)
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs["href"] = href
        if "href" in attrs:
            href = _urljoin(self.base or "", attrs["href"])
            if attrs["rel"] == "alternate" and _content_type(attrs["type"]) in _HTML_TYPES:
                self._current.data["link"] = href
            return
        output = self._pop("link", text, None).replace("&amp;", "&")
        self._current.data["link"] = _LINK_ENTITY.sub(r"&\g<1>", output)

    def _guid(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        entry = self._current
        entry.guid_is_link = attrs.get("ispermalink", "true") == "true"
        output = self._pop("id", _leaf_text(element), None)
        self._store("id", output, None)
        if entry.guid_is_link:
            entry.data.setdefault("link", output)

    def _published(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        text = self._pop(key, _leaf_text(element), None)
        self._current.data["published_parsed"] = _parse_date(text)

    def _updated(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        text = self._pop(key, _leaf_text(element), None)
        self._current.data["updated_parsed"] = _parse_date(text)

    def _other_date(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        _check_date(self._pop(key, _leaf_text(element), None))

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        current = self._current
        key = (term, scheme, label)
        if (term or scheme or label) and key not in current.tag_keys:
            current.tag_keys.add(key)
            current.tags.append([term, scheme, label])

    def _category(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        text = _leaf_text(element)
        if key == "itunes_category":
            self._add_tag(attrs.get("text"), _ITUNES_SCHEME, None)
        else:
            if key == "media_category":
                attrs = {"scheme": _MEDIA_CATEGORY_SCHEME, **attrs}
            scheme = attrs.get("scheme", attrs.get("domain"))
            self._add_tag(attrs.get("term"), scheme, attrs.get("label"))
        output = self._pop("category", text, None)
        if not output:
            return
        current = self._current
        tags = current.tags
        if tags and not tags[-1][0]:
            # The last tag gets its term: its key in tag_keys follows.
            current.tag_keys.discard(tuple(tags[-1]))
            tags[-1][0] = output
            current.tag_keys.add(tuple(tags[-1]))  # type: ignore[arg-type]
        else:
            self._add_tag(output, None, None)

    def _keywords(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        text = _leaf_text(element)
        if attrs:
            return  # feedparser then keeps the attributes and its keyword handler fails quietly
        scheme = _ITUNES_SCHEME if key == "itunes_keywords" else None
        for term in self._pop(key, text, None).split(","):
            if term.strip():
                self._add_tag(term.strip(), scheme, None)

    def _source(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        _leaf_text(element)
        self._current.title_depth = -1

    def _author(self, element: Any, key: str, attrs: dict[str, str]) -> None:
        self._current.authors.append({})
        self.unit = _Unit(element, key, self.depth, None)

    def _unit_child(self, element: Any, key: str) -> None:
        unit = self.unit
        assert unit is not None
        if unit.params is not None:
            # feedparser rebuilds XHTML markup as text, but still calls the end handler of a tag
            # it knows (xhtml:body), and counts svg elements to read titles in them.
            local = element.tag.rpartition("}")[2].lower()
            xhtml = element.tag.startswith("{" + _XHTML + "}")
            if not xhtml or key != f"xhtml_{local}" or local in ("body", "svg", "math"):
                raise _Decline
        elif key not in _AUTHOR_PARTS or self.depth != unit.depth + 1 or len(element):
            raise _Decline
        else:
            unit.children.append((key, element))

    def _end_author(self, unit: _Unit) -> None:
        """feedparser's author handlers: each part updates the author, then the element's text
        is stored and the last author's name and e-mail, if any, replace it."""
        entry = self._current
        for part, element in unit.children:
            # A URI's value does not matter here, only that the author has one.
            field, value = (part, element.text or "") if part in ("name", "email") else ("href", "")
            self._sync_author()
            entry.authors[-1][field] = value.strip()
        pieces = [unit.element.text or ""] + [child.tail or "" for child in unit.element]
        self._store("author", self._pop("author", "".join(pieces), None), None)
        self._sync_author()

    def _sync_author(self) -> None:
        """feedparser's _sync_author_detail."""
        entry = self._current
        detail = entry.authors[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                entry.data["author"] = f"{name} ({email})"
            elif name or email:
                entry.data["author"] = name or email
            return
        author = entry.data.get("author")
        if not author:
            return
        email = None
        if match := _EMAIL.search(author):
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email


_DATES = _words(
    """pubdate published issued dcterms_issued updated modified lastbuilddate dc_date
    dcterms_modified created dcterms_created expirationdate"""
)
# Elements whose handlers only keep values that no Article field reads; as text-only leaves they
# cannot disturb the state either.
_HARMLESS_LEAVES = """rights copyright dc_rights subtitle tagline itunes_subtitle info
    feedburner_browserfriendly language dc_language webmaster dc_publisher media_thumbnail
    media_credit media_rating media_restriction media_license media_player itunes_image
    itunes_link itunes_block itunes_explicit name email uri url homepage width height generator
    cloud newlocation dc_contributor"""
_SUMMARIES = frozenset({"summary", "itunes_summary"})
_DESCRIPTIONS = frozenset({"description", "dc_description", "media_description"})
_CONTENTS = frozenset({"content", "content_encoded", "fullitem"})
_FEED_LEAVES = _words(
    _HARMLESS_LEAVES
    + """ title dc_title media_title link guid id category keywords dc_subject media_category
    media_keywords itunes_keywords itunes_name itunes_email"""
)
_FEED_CONTAINERS = _words(
    """author dc_creator dc_author itunes_author managingeditor contributor image textinput
    itunes_owner itunes_category media_content media_group enclosure"""
)


def _leaf_text(element: Any) -> str:
    """The text of an element that must not contain others."""
    if len(element):
        raise _Decline
    text: str | None = element.text
    return text or ""


def _markup(element: Any) -> list[str]:
    """An XHTML element as the pieces of text feedparser rebuilds it into."""
    local = element.tag.rpartition("}")[2].lower()
    attrs = "".join(
        ' {}="{}"'.format(key, _escape(value).replace('"', "&quot;"))
        for key, value in _attributes(element).items()
    )
    pieces = [f"<{local}{attrs}>", _escape(element.text or "")]
    for child in element:
        pieces.extend(_markup(child))
        pieces.append(_escape(child.tail or ""))
    pieces.append(f"</{local}>")
    return pieces


def _unwrap_div(pieces: list[str]) -> list[str]:
    """feedparser drops the <div> around Atom XHTML content, when it wraps all the rest."""
    while len(pieces) > 1 and not pieces[-1].strip():
        del pieces[-1]
    while len(pieces) > 1 and not pieces[0].strip():
        del pieces[0]
    if (
        pieces
        and (pieces[0] == "<div>" or pieces[0].startswith("<div "))
        and pieces[-1] == "</div>"
    ):
        depth = 0
        for piece in pieces[:-1]:
            if piece.startswith("</"):
                depth -= 1
                if depth == 0:
                    return pieces
            elif piece.startswith("<") and not piece.endswith("/>"):
                depth += 1
        return pieces[1:-1]
    return pieces


def parse_fast(data: bytes, base_url: str | None = None) -> list[Article] | None:
    """The articles feedparser's path would give for ``data``, or None when not sure.

    ``base_url`` is where the feed was fetched from: relative links resolve against it (through
    any xml:base), as they do in feedfile.parse_feed. None means the feed must be read by
    feedparser; it is never an error in itself.
    """
    try:
        root = _etree.fromstring(_utf8_document(data), _parser())
        language, entries = _Reader(base_url or "").read(root)
    except (_Decline, _etree.LxmlError):
        return None
    return to_articles(language, entries)
