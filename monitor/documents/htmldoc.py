"""HTML pages (.html, .htm) -> one Article.

The title is the page's <title>, else its first <h1>, else the first line of its text; the body is
the readable text (see ``monitor.documents.html``) without a first line that repeats the title. The
page's metadata fills the rest when present: ``<html lang>`` the language, ``<meta name=author>``
the author, ``article:published_time`` the date, ``<link rel=canonical>`` (else ``og:url``) the URL
(http and https only), ``<meta name=description>`` (else ``og:description``) the summary and
``article:tag`` the tags. A page with no title and no text raises DocumentError("empty document").
"""

from __future__ import annotations

from html.parser import HTMLParser

from monitor.documents.dates import parse_date
from monitor.documents.decode import decode_text
from monitor.documents.html import feed_html, html_title, html_to_text
from monitor.documents.urls import web_url
from monitor.errors import DocumentError
from monitor.models import Article


class _Metadata(HTMLParser):
    """Collects <html lang>, <meta> name/property -> content, and the canonical link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.meta: dict[str, str] = {}
        self.tags: list[str] = []
        self.canonical: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value.strip() for name, value in attrs if value}
        if tag == "html" and self.lang is None:
            self.lang = values.get("lang") or values.get("xml:lang")
        elif tag == "meta":
            key = (values.get("name") or values.get("property") or "").lower()
            content = values.get("content")
            if key == "article:tag" and content:
                self.tags.append(content)
            elif key and content:
                # The first of a repeated key wins, as it does for browsers' document.title.
                self.meta.setdefault(key, content)
        elif tag == "link" and self.canonical is None:
            rels = (values.get("rel") or "").lower().split()
            if "canonical" in rels:
                self.canonical = values.get("href")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def parse_html(data: bytes) -> list[Article]:
    """Parse an HTML page into one Article (see the module docstring)."""
    page = decode_text(data)
    metadata = _read_metadata(page)
    text = html_to_text(page)
    first_line, _, rest = text.partition("\n")
    title = html_title(page)
    if title is None:
        title, text = first_line.strip(), rest.strip()
    elif " ".join(first_line.split()) == title:
        text = rest.strip()
    if not title and not text:
        raise DocumentError("empty document")
    meta = metadata.meta
    return [
        Article(
            title=title,
            body=text,
            summary=meta.get("description") or meta.get("og:description") or "",
            url=web_url(metadata.canonical) or web_url(meta.get("og:url")),
            author=meta.get("author"),
            published=parse_date(meta.get("article:published_time")),
            tags=tuple(dict.fromkeys(metadata.tags)),
            language=metadata.lang,
        )
    ]


def _read_metadata(page: str) -> _Metadata:
    metadata = _Metadata()
    feed_html(metadata, page)
    return metadata
