"""Feed files (.xml, .rss, .atom: RSS 0.9x/1.0/2.0, Atom 0.3/1.0) -> one Article per entry.

feedparser reads the bytes, and only the bytes: they go in wrapped in a BytesIO, because
``feedparser.parse`` treats a bare ``bytes`` or ``str`` argument as a file path or URL first and
would read whatever local file the document's bytes happened to name.

Before that, a document whose DOCTYPE declares entities is refused: entity expansion is how the
"billion laughs" and quadratic-blowup attacks turn a small file into gigabytes, and feeds have no
legitimate use for an internal DTD.

Per entry: the title (converted from HTML when typed so); the summary as text; the body from the
entry's first content, converted from HTML when typed so. An entry with no content (an RSS item with
only a <description>) keeps its text in ``summary`` and has an empty body, rather than the same text
twice; for the same reason a summary that only repeats the body (feedparser copies an Atom
<content> into the summary when there is none) is dropped. The URL is the entry's link when it is
http(s); the GUID its id; the author, tags (terms) and date (published, else updated) when given;
the language the feed's, else the content's.

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

from monitor.documents.dates import from_struct_time
from monitor.documents.html import html_to_text
from monitor.documents.urls import web_url
from monitor.errors import DocumentError
from monitor.models import Article

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


def parse_feed(data: bytes, base_url: str | None = None) -> list[Article]:
    """Parse an RSS or Atom document into its entries (see the module docstring).

    ``base_url`` is the URL the feed was fetched from.
    """
    _refuse_entities(data)
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
        raise DocumentError(f"not a feed: no RSS, RDF or Atom root element{detail}")
    if _get(result, "bozo") and not entries:
        raise DocumentError(f"malformed feed with no entries: {_get(result, 'bozo_exception')}")
    feed: Any = _get(result, "feed") or {}
    language = _text(_get(feed, "language"))
    articles = (_article(entry, language) for entry in entries)
    # A malformed feed can leave a stub entry (an item cut off before its first complete element):
    # with no text at all there is nothing to match or to show.
    return [article for article in articles if article.title or article.summary or article.body]


def _refuse_entities(data: bytes) -> None:
    # Removing NULs makes the ASCII markup of a UTF-16 or UTF-32 document searchable as bytes,
    # so a change of encoding does not slip an entity declaration past this check.
    markup = data.replace(b"\x00", b"")
    doctype = _DOCTYPE.search(markup)
    if doctype is not None and _ENTITY.search(markup, doctype.end()):
        raise DocumentError("feed declares XML entities (DOCTYPE with ENTITY), refused")


def _article(entry: Any, feed_language: str | None) -> Article:
    title = _detailed_text(_get(entry, "title"), _get(entry, "title_detail"))
    content, content_language, raw_content = _content(_get(entry, "content"))
    raw_summary = _get(entry, "summary")
    summary = _detailed_text(raw_summary, _get(entry, "summary_detail"))
    if summary == content or raw_summary == raw_content:
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
