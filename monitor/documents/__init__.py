"""Documents: the bytes of one file -> the Articles in it, one module per format.

``parse_document(name, data)`` picks the format by the suffix of ``name`` (case-insensitive) and
returns the articles in ``data``: one for a text, Markdown, HTML or e-mail file; one per entry for a
feed file, a JSON Feed or a JSON list. An empty list means a well-formed document with no articles
(a feed with no entries), not an error. Fields are filled as the format allows; ``source_id``,
``key`` and ``location`` are left for the caller, who knows where the bytes came from.

Every article leaves here cleaned the same way, whatever its format: NULs and lone surrogates (which
JSON escapes and broken mail headers can produce, and which no database or mail server accepts)
are removed or replaced, one-line fields (title, author, URL, language, tags, GUID) have their
whitespace collapsed, and each text field is cut at ``MAX_FIELD_CHARS``.

Errors: every problem with the bytes (an unsupported suffix, an encoding, syntax or type error, an
empty document, a refused DTD, nesting too deep to parse) raises ``monitor.errors.DocumentError``
whose message is a short reason for a person; nothing else is raised for any bytes. (MemoryError
is not about the bytes, which callers cap in size, but about the process: it is left to propagate.)
Parsing is pure: no file or network I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import PurePath
from types import MappingProxyType

from monitor.documents.eml import parse_eml
from monitor.documents.feedfile import parse_feed
from monitor.documents.htmldoc import parse_html
from monitor.documents.jsondoc import parse_json, parse_json_feed
from monitor.documents.markdown import parse_markdown
from monitor.documents.txt import parse_txt
from monitor.errors import DocumentError
from monitor.models import Article

__all__ = ["MAX_FIELD_CHARS", "SUPPORTED_SUFFIXES", "parse_document", "parse_feed_document"]

MAX_FIELD_CHARS = 1_000_000
"""The longest a text field may be: past this a "document" is an attack or an accident."""

Parser = Callable[[bytes], list[Article]]

_CLOSED_ENTRY = re.compile(rb"</(?:[A-Za-z][\w.-]*:)?(?:item|entry)\s*>", re.IGNORECASE)


def _parse_whole_entries(data: bytes, base_url: str | None = None) -> list[Article]:
    """The entries of an RSS or Atom document, less an entry cut off by truncation.

    feedparser recovers what it can from a truncated document, including the entry it was in
    when the bytes ended, with whatever text had arrived. That half entry would be stored and
    alerted as if it were the article, and its rest would arrive later as an "edit"; so when the
    document has fewer closing item/entry tags than entries, the last entry is dropped (it comes
    whole with the next complete fetch).
    """
    articles = parse_feed(data, base_url)
    closed = len(_CLOSED_ENTRY.findall(data.replace(b"\x00", b"")))
    return articles[:closed] if closed < len(articles) else articles


_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        ".txt": parse_txt,
        ".md": parse_markdown,
        ".markdown": parse_markdown,
        ".html": parse_html,
        ".htm": parse_html,
        ".json": parse_json,
        ".xml": _parse_whole_entries,
        ".rss": _parse_whole_entries,
        ".atom": _parse_whole_entries,
        ".eml": parse_eml,
    }
)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_PARSERS)


def parse_document(name: str, data: bytes) -> list[Article]:
    """The articles in ``data``, read in the format that the suffix of ``name`` selects.

    Raises DocumentError with a short reason when the suffix is unsupported or the bytes are not a
    valid document of that format.
    """
    suffix = PurePath(name).suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        shown = repr(suffix) if suffix else "no suffix"
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentError(f"unsupported file type ({shown}); supported: {supported}")
    try:
        articles = parser(data)
    except RecursionError:
        # The parsers limit or avoid recursion (JSON and e-mail say so in their own words), but
        # a recursive library underneath can still hit the limit: that is this document's fault.
        raise DocumentError("document nested too deeply") from None
    return [_clean(article) for article in articles]


def parse_feed_document(data: bytes, base_url: str | None = None) -> list[Article]:
    """The entries of a feed served over HTTP from ``base_url``: a JSON Feed when the body is a
    JSON object, else RSS or Atom (relative links resolved against xml:base, else ``base_url``).
    Anything else (an HTML page, an API's JSON) raises DocumentError("not a feed")."""
    start = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    try:
        if start.startswith(b"{"):
            articles = parse_json_feed(data)
        else:
            articles = _parse_whole_entries(data, base_url)
    except RecursionError:
        raise DocumentError("document nested too deeply") from None
    return [_clean(article) for article in articles]


def _clean(article: Article) -> Article:
    return replace(
        article,
        title=_line(article.title) or "",
        body=_text(article.body),
        summary=_text(article.summary),
        url=_line(article.url),
        author=_line(article.author),
        tags=tuple(dict.fromkeys(tag for tag in map(_line, article.tags) if tag)),
        language=_line(article.language),
        guid=_line(article.guid),
    )


def _text(value: str) -> str:
    if not value.isascii():
        # Lone surrogates cannot be encoded as UTF-8: replace them, keep everything else.
        value = value.encode("utf-8", errors="replace").decode("utf-8")
    return value.replace("\x00", "")[:MAX_FIELD_CHARS]


def _line(value: str | None) -> str | None:
    if value is None:
        return None
    return " ".join(_text(value).split()) or None
