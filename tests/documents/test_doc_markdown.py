"""Markdown files: front matter, heading title, body with light syntax removed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.documents.markdown import parse_markdown
from monitor.errors import DocumentError


def test_front_matter_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """Front matter gives title, date, author and tags; the body loses the Markdown syntax."""
    [article] = parse_markdown(fixture_bytes("front_matter.md"))
    assert article.title == "Protests spread across Kazakhstan"
    assert article.published == datetime(2022, 1, 7, 4, 30, tzinfo=UTC)
    assert article.author == "Jane Reporter"
    assert article.tags == ("Politics", "Central Asia")
    assert article.body == (
        "A heading that is not the title\n\n"
        "Protesters gathered in Almaty after the fuel price rise, see the report.\n\n"
        "* Police used tear gas\n"
        "* Internet was cut"
    )


def test_setext_fixture(fixture_bytes: Callable[[str], bytes]) -> None:
    """A setext heading is the title even after a paragraph, and leaves the body."""
    [article] = parse_markdown(fixture_bytes("setext.md"))
    assert article.title == "Kazakhstan lifts the state of emergency"
    assert article.body == (
        "Some intro text before the heading.\n\nThe government said life was returning to normal."
    )


@pytest.mark.parametrize(
    ("text", "title", "body"),
    [
        pytest.param("# Title\n\nBody", "Title", "Body", id="atx"),
        pytest.param("### Deep title ###\nBody", "Deep title", "Body", id="atx-closed"),
        pytest.param("#hashtag line\n## Real", "Real", "#hashtag line", id="hashtag-not-heading"),
        pytest.param("Title\n---\nBody", "Title", "Body", id="setext-dash"),
        pytest.param("First line\nsecond line", "First line", "second line", id="no-heading"),
        pytest.param(
            "```\n# not a heading\n```\n# Heading", "Heading", "# not a heading", id="fenced-code"
        ),
        pytest.param("# [Linked](https://x.y) *title*\nx", "Linked title", "x", id="inline-title"),
        pytest.param(
            '# T\nSee [docs](https://example.com "t") and ![img](i.png) <https://a.example>.',
            "T",
            "See docs and  https://a.example.",
            id="links-images",
        ),
        pytest.param(
            "# T\n**bold** __strong__ _em_ ~~old~~ `code`", "T", "bold strong em old code"
        ),
        pytest.param("# T\nsnake_case and 2 * 3 and a*b", "T", "snake_case and 2 * 3 and a*b"),
        pytest.param("# T\n> quoted\n> > nested", "T", "quoted\nnested", id="blockquote"),
        pytest.param("# T\n\n[ref]: https://example.com\nText", "T", "Text", id="link-definition"),
        pytest.param("# T\n\n\n\nA\n\n\n\nB", "T", "A\n\nB", id="blank-lines-collapse"),
    ],
)
def test_title_and_body(text: str, title: str, body: str) -> None:
    """The first heading (else the first line) is the title; the rest is plain text."""
    [article] = parse_markdown(text.encode())
    assert (article.title, article.body) == (title, body)


@pytest.mark.parametrize(
    ("text", "title", "tags"),
    [
        pytest.param("---\n- a list\n---\n# Heading", "Heading", (), id="not-a-mapping"),
        pytest.param("---\ntitle: [unclosed\n---\n# Heading", "Heading", (), id="invalid-yaml"),
        pytest.param("---\ntitle: 1984\ntags: a, b\n---\nx", "1984", ("a", "b"), id="scalars"),
        pytest.param("---\ntags: [x, x, 3]\n---\n# H", "H", ("x", "3"), id="tags-deduplicated"),
    ],
)
def test_front_matter_variants(text: str, title: str, tags: tuple[str, ...]) -> None:
    """Front matter that is not a mapping is ignored; scalars and tag strings are read as text."""
    [article] = parse_markdown(text.encode())
    assert (article.title, article.tags) == (title, tags)
    assert "---" not in article.body


def test_unclosed_front_matter_is_a_rule() -> None:
    """A leading --- with no closing line is not front matter."""
    [article] = parse_markdown(b"---\nJust text\n")
    assert article.title == "Just text"


@pytest.mark.parametrize("text", [b"", b"\n  \n", b"---\ntitle: \n---\n"])
def test_empty_is_an_error(text: bytes) -> None:
    """A file with no title anywhere raises DocumentError("empty document")."""
    with pytest.raises(DocumentError, match=r"^empty document$"):
        parse_markdown(text)


@pytest.mark.parametrize(
    "front",
    [
        pytest.param("title: T\ndate: 2026-02-30", id="a-date-that-does-not-exist"),
        pytest.param("title: 0x" + "f" * 4000, id="an-integer-past-the-digit-limit"),
        pytest.param("tags: [1:59:59:" + "59:" * 3000 + "59]", id="a-sexagesimal-tag-too-long"),
        pytest.param("title: T\n" + "k: [1, 2, 3]\n" * 6000, id="longer-than-the-cap"),
    ],
)
def test_front_matter_that_cannot_be_read_is_ignored(front: str) -> None:
    """YAML that loads to values Python refuses, or front matter past MAX_FRONT_MATTER, is
    ignored as malformed YAML is: the heading is the title."""
    [article] = parse_markdown(f"---\n{front}\n---\n# Heading\nBody".encode())
    assert (article.title, article.tags, article.body) == ("Heading", (), "Body")
