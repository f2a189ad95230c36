"""JSON documents -> Articles. Three shapes are read:

* a JSON Feed (1.0 or 1.1): an object whose ``version`` starts with
  ``https://jsonfeed.org/version/`` and whose ``items`` is a list; one Article per item;
* one article object: ``title``, ``body`` (or ``content`` or ``text``), ``summary``, ``url``,
  ``published`` (ISO 8601), ``author`` (a string or ``{"name": ...}``), ``tags`` (strings),
  ``language``, ``id`` (or ``guid``);
* a list of such objects; one Article each.

Unknown keys are ignored. A key of the wrong type raises DocumentError naming the item (its 0-based
index in the list) and the key; so does an object with neither title nor body. A date that does not
parse is left out rather than refused: it is metadata, and the text is still worth matching. An
empty list, or a feed with no items, gives no articles.
"""

from __future__ import annotations

import json

from monitor.documents.dates import parse_date
from monitor.documents.decode import decode_text
from monitor.documents.html import html_to_text
from monitor.documents.urls import web_url
from monitor.errors import DocumentError, NotAFeedError
from monitor.models import Article

_JSON_FEED_VERSION = "https://jsonfeed.org/version/"
_BODY_KEYS = ("body", "content", "text")


def parse_json(data: bytes) -> list[Article]:
    """Parse a JSON Feed, an article object or a list of them (see the module docstring)."""
    text = decode_text(data)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DocumentError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except ValueError as error:
        # Not a syntax error: an integer longer than Python's int-to-str digit limit.
        raise DocumentError(f"invalid JSON: {error}") from None
    except RecursionError:
        raise DocumentError("invalid JSON: nested too deeply") from None
    if isinstance(document, list):
        return [_article(item, f"JSON item {index}") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise DocumentError(
            f"JSON document must be an object or a list of objects, not {_kind(document)}"
        )
    if _is_json_feed(document):
        return _json_feed(document)
    if "items" in document:
        raise DocumentError(
            "JSON object has 'items' but no JSON Feed 'version' "
            f"(expected one starting with {_JSON_FEED_VERSION})"
        )
    return [_article(document, "JSON object")]


def parse_json_feed(data: bytes) -> list[Article]:
    """Parse a JSON Feed; any other JSON is "not a feed" (a feed URL that serves an API's JSON)."""
    text = decode_text(data)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise NotAFeedError("not a feed: invalid JSON") from None
    if not isinstance(document, dict) or not _is_json_feed(document):
        raise NotAFeedError(f"not a feed: JSON without a {_JSON_FEED_VERSION}... version")
    return _json_feed(document)


def _is_json_feed(document: dict[str, object]) -> bool:
    version = document.get("version")
    return isinstance(version, str) and version.startswith(_JSON_FEED_VERSION)


class _Fields:
    """Typed access to one JSON object's keys; ``where`` names it in errors."""

    def __init__(self, values: object, where: str) -> None:
        if not isinstance(values, dict):
            raise DocumentError(f"{where}: must be an object, not {_kind(values)}")
        self.values: dict[str, object] = values
        self.where = where

    def text(self, *keys: str) -> str | None:
        """The first of ``keys`` present and not null; it must be a string."""
        for key in keys:
            value = self.values.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise DocumentError(f"{self.where}: {key!r} must be a string, not {_kind(value)}")
            return value
        return None

    def identifier(self, *keys: str) -> str | None:
        """An id: a string, or a number coerced to one (JSON Feed tells readers to do so)."""
        for key in keys:
            value = self.values.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            if value is not None:
                return self.text(key)
        return None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DocumentError(f"{self.where}: {key!r} must be a list of strings")
        return tuple(dict.fromkeys(item.strip() for item in value if item.strip()))

    def author(self, key: str) -> str | None:
        """A name given as a string or as an object with a "name"."""
        value = self.values.get(key)
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, dict):
            raise DocumentError(
                f"{self.where}: {key!r} must be a string or an object, not {_kind(value)}"
            )
        return _Fields(value, f"{self.where}: {key!r}").text("name")


def _article(values: object, where: str) -> Article:
    fields = _Fields(values, where)
    title = fields.text("title")
    body = fields.text(*_BODY_KEYS)
    if not title and not body:
        raise DocumentError(f"{where}: has neither 'title' nor 'body'")
    return Article(
        title=title or "",
        body=body or "",
        summary=fields.text("summary") or "",
        url=web_url(fields.text("url")),
        author=fields.author("author"),
        published=parse_date(fields.text("published")),
        tags=fields.strings("tags"),
        language=fields.text("language"),
        guid=fields.identifier("id", "guid"),
    )


def _json_feed(document: dict[str, object]) -> list[Article]:
    feed = _Fields(document, "JSON Feed")
    items = document.get("items")
    if not isinstance(items, list):
        raise DocumentError(f"JSON Feed: 'items' must be a list, not {_kind(items)}")
    language = feed.text("language")
    feed_author = _feed_author(feed)
    return [
        _json_feed_item(item, f"JSON Feed item {index}", language, feed_author)
        for index, item in enumerate(items)
    ]


def _json_feed_item(
    values: object, where: str, feed_language: str | None, feed_author: str | None
) -> Article:
    item = _Fields(values, where)
    title = item.text("title")
    # content_text is what the author wrote as plain text; content_html is its rich twin.
    body = item.text("content_text")
    if body is None:
        html = item.text("content_html")
        body = html_to_text(html) if html is not None else None
    if not title and not body:
        raise DocumentError(f"{where}: has neither 'title' nor content")
    return Article(
        title=title or "",
        body=body or "",
        summary=item.text("summary") or "",
        url=web_url(item.text("url")) or web_url(item.text("external_url")),
        author=_feed_author(item) or feed_author,
        published=parse_date(item.text("date_published")),
        tags=item.strings("tags"),
        language=item.text("language") or feed_language,
        guid=item.identifier("id"),
    )


def _feed_author(fields: _Fields) -> str | None:
    """JSON Feed 1.1 ``authors`` (names joined), else 1.0 ``author``."""
    authors = fields.values.get("authors")
    if authors is not None:
        if not isinstance(authors, list):
            raise DocumentError(f"{fields.where}: 'authors' must be a list of objects")
        names = [_Fields(a, f"{fields.where}: 'authors'").text("name") for a in authors]
        joined = ", ".join(name for name in names if name)
        if joined:
            return joined
    return fields.author("author")


def _kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
