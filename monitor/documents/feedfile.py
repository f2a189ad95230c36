"""Feed files (.xml, .rss, .atom: RSS 0.9x/1.0/2.0, Atom 0.3/1.0) -> one Article per entry.

feedparser reads the bytes, and only the bytes: they go in wrapped in a BytesIO, because
``feedparser.parse`` treats a bare ``bytes`` or ``str`` argument as a file path or URL first and
would read whatever local file the document's bytes happened to name.

Before that, a document whose DOCTYPE declares entities is refused: entity expansion is how the
"billion laughs" and quadratic-blowup attacks turn a small file into gigabytes, and feeds have no
legitimate use for an internal DTD.

feedparser reads a few hundred items a second. So a feed goes first to the fast path in fastfeed,
which gives the very articles feedparser's reading would, or declines; only a feed it declines is
read by feedparser. ``fast=False`` goes straight to feedparser (the differential tests need it).

Per entry: the title (converted from HTML when typed so); the summary as text; the body from the
entry's first content, converted from HTML when typed so. An entry with no content (an RSS item with
only a <description>) keeps its text in ``summary`` and has an empty body, rather than the same text
twice; for the same reason a summary that only repeats the body (feedparser copies an Atom
<content> into the summary when there is none) is dropped. The URL is the entry's link when it is
http(s); the GUID its id; the author, tags (terms) and date (published, else updated) when given;
the language the feed's, else the content's. That mapping is ``fastfeed.to_articles``, which both
paths share.

Relative links resolve against xml:base, and against ``base_url`` (where the feed was fetched from)
when one is given; a link still relative after that is left out, as any link that is not http(s).

Errors: a document that is not a feed raises DocumentError("not a feed: ..."); a malformed feed
from which feedparser recovered no entry raises DocumentError naming feedparser's complaint. A
malformed feed with entries gives the entries it recovered, as a feed reader would. A well-formed
feed with no entries gives an empty list.
"""

from __future__ import annotations

import io
import re
from typing import Any

import feedparser

from monitor.documents.fastfeed import parse_fast, to_articles
from monitor.errors import DocumentError, NotAFeedError
from monitor.models import Article

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_NUMERIC_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


def _valid_references(data: bytes) -> bytes:
    """``data`` with each numeric character reference to a code point no text may hold (a lone
    surrogate, NUL, past U+10FFFF) written as U+FFFD instead. XML forbids them, so the fast
    parser refuses the document, and feedparser's fallback raises on a surrogate: one bad
    title would otherwise lose every entry of the feed."""
    if b"&#" not in data:
        return data
    return _NUMERIC_REFERENCE.sub(_valid_reference, data)


def _valid_reference(found: re.Match[bytes]) -> bytes:
    hexadecimal, decimal = found.groups()
    point = int(hexadecimal, 16) if hexadecimal else int(decimal)
    if point == 0 or 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
        return b"&#xFFFD;"
    return found.group()


def parse_feed(data: bytes, base_url: str | None = None, *, fast: bool = True) -> list[Article]:
    """Parse an RSS or Atom document into its entries (see the module docstring).

    ``base_url`` is the URL the feed was fetched from; ``fast=False`` skips the fast path.
    """
    _refuse_entities(data)
    data = _valid_references(data)
    if fast:
        articles = parse_fast(data, base_url)
        if articles is not None:
            return articles
    # feedparser takes the feed's location from a Content-Location header. Any header makes it
    # apply HTTP's rules for the encoding, which without a Content-Type would be ISO-8859-1 and a
    # "malformed" flag: an XML type keeps the rules it applies to a local document.
    headers = None
    if base_url:
        headers = {"content-location": base_url, "content-type": "application/xml"}
    try:
        # Sanitizing and URI resolution rewrite the HTML of each entry; we only keep its text (which
        # html_to_text extracts without scripts), and both passes take quadratic time on crafted
        # markup ("<!--" repeated: 240 kB took 16 s).
        result: Any = feedparser.parse(
            io.BytesIO(data),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as error:
        # feedparser is lenient by design and documents no exceptions; should one escape it
        # anyway, it is this document that cannot be read, which is what DocumentError means.
        raise DocumentError(f"feed parser failed: {type(error).__name__}: {error}") from error
    entries: list[Any] = list(_get(result, "entries") or [])
    if not _get(result, "version"):
        detail = f" ({_get(result, 'bozo_exception')})" if _get(result, "bozo") else ""
        raise NotAFeedError(f"not a feed: no RSS, RDF or Atom root element{detail}")
    if _get(result, "bozo") and not entries:
        raise DocumentError(f"malformed feed with no entries: {_get(result, 'bozo_exception')}")
    feed: Any = _get(result, "feed") or {}
    return to_articles(_get(feed, "language"), entries)


def declares_entities(data: bytes) -> bool:
    """Whether an XML document's DOCTYPE declares entities (how "billion laughs" and quadratic
    blowups turn a small file into gigabytes), in any of XML's encodings."""
    # Removing NULs makes the ASCII markup of a UTF-16 or UTF-32 document searchable as bytes,
    # so a change of encoding does not slip an entity declaration past this check.
    markup = data.replace(b"\x00", b"")
    doctype = _DOCTYPE.search(markup)
    return doctype is not None and _ENTITY.search(markup, doctype.end()) is not None


def _refuse_entities(data: bytes) -> None:
    if declares_entities(data):
        raise DocumentError("feed declares XML entities (DOCTYPE with ENTITY), refused")


def _get(mapping: Any, key: str) -> Any:
    """``mapping[key]`` read as a plain dict: FeedParserDict's own lookups add aliases (such as
    ``updated_parsed`` falling back to ``published_parsed``) that warn and blur what the feed said.
    """
    return dict.get(mapping, key) if isinstance(mapping, dict) else None
