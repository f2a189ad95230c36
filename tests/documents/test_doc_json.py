"""JSON documents: JSON Feed 1.0/1.1, one article object, or a list of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.documents.jsondoc import parse_json
from monitor.errors import DocumentError


def test_json_feed_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """Each JSON Feed 1.1 item becomes an article; HTML content is converted, ids coerced."""
    first, second = parse_json(fixture_bytes("feed_1_1.json"))
    assert first.title == "Tokayev orders troops to fire without warning"
    assert first.body == "The president spoke on Friday.\n\nTroops are on the streets."
    assert first.summary == "Shoot-to-kill order"
    assert first.url == "https://wire.example.com/tokayev"
    assert first.author == "A. Reporter, B. Reporter"
    assert first.published == datetime(2022, 1, 7, 4, tzinfo=UTC)
    assert first.tags == ("Kazakhstan", "Security")
    assert first.language == "en"
    assert first.guid == "2022-01-07-tokayev"
    assert (second.title, second.body) == ("", "A microblog post without a title.")
    assert (second.guid, second.author, second.language) == ("42", "Wire Desk", "ru")
    assert second.published is None


def test_json_feed_1_0_author_object() -> None:
    """JSON Feed 1.0 gives its author as one object, and content_text wins over content_html."""
    feed = {
        "version": "https://jsonfeed.org/version/1",
        "author": {"name": "Feed Author"},
        "items": [{"id": "1", "title": "T", "content_text": "plain", "content_html": "<p>h</p>"}],
    }
    [article] = parse_json(json.dumps(feed).encode())
    assert (article.author, article.body) == ("Feed Author", "plain")


def test_single_article_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """One object is one article; "content" is accepted for the body, extra keys ignored."""
    [article] = parse_json(fixture_bytes("article.json"))
    assert article.title == "Internet restored in Kazakhstan"
    assert article.body == "Mobile internet came back on Monday after five days."
    assert article.summary == "Connectivity is back"
    assert article.url == "https://example.com/internet"
    assert article.author == "Net Watch"
    assert article.published == datetime(2022, 1, 10, 6, tzinfo=UTC)
    assert article.tags == ("Internet", "Kazakhstan")
    assert (article.language, article.guid) == ("en", "net-1")


def test_article_list_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """A list gives one article per object; a non-web URL is dropped."""
    first, second = parse_json(fixture_bytes("articles.json"))
    assert (first.title, first.body, first.author) == ("First", "Body one", "Ann")
    assert first.published == datetime(2022, 1, 8, tzinfo=UTC)
    assert (second.title, second.body, second.guid, second.url) == (
        "Second",
        "Body two",
        "s-2",
        None,
    )


@pytest.mark.parametrize(
    "document", [b"[]", b'{"version": "https://jsonfeed.org/version/1.1", "items": []}']
)
def test_no_articles_is_not_an_error(document: bytes) -> None:
    """An empty list or a feed with no items is a valid document with no articles."""
    assert parse_json(document) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param(
            "malformed.json",
            "invalid JSON at line 4 column 3: Expecting ',' delimiter",
            id="syntax",
        ),
        pytest.param(
            "items_object.json", "JSON Feed: 'items' must be a list, not an object", id="items"
        ),
        pytest.param(
            "wrong_type.json", "JSON item 2: 'title' must be a string, not a list", id="type"
        ),
    ],
)
def test_invalid_fixtures(fixture_bytes: Callable[[str], bytes], name: str, reason: str) -> None:
    """Malformed JSON files raise DocumentError with a reason that points at the problem."""
    with pytest.raises(DocumentError) as raised:
        parse_json(fixture_bytes(name))
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param("", "invalid JSON at line 1 column 1: Expecting value", id="empty"),
        pytest.param("42", "JSON document must be an object or a list of objects, not a number"),
        pytest.param("[1]", "JSON item 0: must be an object, not a number", id="list-of-numbers"),
        pytest.param('{"body": ""}', "JSON object: has neither 'title' nor 'body'", id="no-text"),
        pytest.param(
            '{"title": "t", "tags": "a"}', "JSON object: 'tags' must be a list of strings"
        ),
        pytest.param(
            '{"title": "t", "tags": [1]}', "JSON object: 'tags' must be a list of strings"
        ),
        pytest.param(
            '{"title": "t", "author": 5}',
            "JSON object: 'author' must be a string or an object, not a number",
        ),
        pytest.param(
            '{"title": "t", "author": {"name": []}}',
            "JSON object: 'author': 'name' must be a string, not a list",
        ),
        pytest.param(
            '{"title": "t", "published": 1641549600}',
            "JSON object: 'published' must be a string, not a number",
        ),
        pytest.param(
            '{"title": "t", "id": true}', "JSON object: 'id' must be a string, not a boolean"
        ),
        pytest.param(
            '{"items": []}',
            "JSON object has 'items' but no JSON Feed 'version' "
            "(expected one starting with https://jsonfeed.org/version/)",
            id="items-without-version",
        ),
        pytest.param(
            '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1"}]}',
            "JSON Feed item 0: has neither 'title' nor content",
            id="feed-item-without-text",
        ),
        pytest.param(
            '{"version": "https://jsonfeed.org/version/1.1", "items": [], "authors": {}}',
            "JSON Feed: 'authors' must be a list of objects",
            id="feed-authors",
        ),
        pytest.param("[" * 100_000, "invalid JSON: nested too deeply", id="deep-nesting"),
        pytest.param("1" * 5000, "invalid JSON: ", id="huge-integer"),
    ],
)
def test_invalid_documents(document: str, reason: str) -> None:
    """Wrong types name the item and key; syntax and shape errors say what is wrong."""
    with pytest.raises(DocumentError) as raised:
        parse_json(document.encode())
    assert str(raised.value).startswith(reason)


def test_date_that_does_not_parse_is_left_out() -> None:
    """An unparseable "published" string leaves the date empty instead of refusing the article."""
    [article] = parse_json(b'{"title": "t", "published": "last Tuesday"}')
    assert article.published is None
