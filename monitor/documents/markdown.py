"""Markdown documents -> one Article.

Front matter, when the file starts with a ``---`` line and another ``---`` (or ``...``) line closes
it, is read with ``yaml.safe_load``; its ``title``, ``date``, ``author`` and ``tags`` fill those
fields. Front matter that is not valid YAML or not a mapping is ignored (and still not shown as
body text): it is metadata, and a typo in it should not lose the article.

Without a front-matter title the title is the first heading (ATX ``# Title`` at any level, or a
setext ``Title`` over ``===``/``---``), else the first non-empty line; that line leaves the body.
The body is the rest with light syntax removed: links keep their text, images go, emphasis and code
markers go, heading hashes and quote markers go; list markers stay. This is not a Markdown renderer,
only enough to make the words match as a reader sees them. An empty file raises
DocumentError("empty document").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import yaml

from monitor.documents.dates import parse_date
from monitor.documents.decode import decode_text
from monitor.errors import DocumentError
from monitor.models import Article

_FRONT_MATTER_OPEN = "---"
_FRONT_MATTER_CLOSE = frozenset({"---", "..."})
# Every pattern here runs in linear time on a hostile line: no nested or overlapping repeats, and
# bracketed parts cannot contain their own opening bracket, so a regex never rescans a long line.
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
_RULE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\[\]]+\]:[ \t]*\S")
_QUOTE = re.compile(r"^ {0,3}(?:> ?)+")

_INLINE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[[^\[\]]*\](?:\([^()]*\)|\[[^\[\]]*\])"), ""),  # image, inline or reference
    (re.compile(r"\[([^\[\]]+)\](?:\([^()]*\)|\[[^\[\]]*\])"), r"\1"),  # link -> its text
    (re.compile(r"<((?:https?|mailto):[^<>\s]+)>"), r"\1"),  # autolink
    # Emphasis markers at a word edge; inside a word (snake_case, 2*3) or alone (a "* " list
    # marker) they are text. A match starts only at the first marker of a run.
    (re.compile(r"(?<![\w*_])[*_]++(?=\S)|(?<=[^\s*_])[*_]++(?!\w)"), ""),
    (re.compile(r"(?<![\w~])~~(?=\S)|(?<=[^\s~])~~(?!\w)"), ""),
    (re.compile(r"`+"), ""),  # code spans
)


@dataclass(frozen=True, slots=True)
class _FrontMatter:
    title: str | None = None
    published: datetime | None = None
    author: str | None = None
    tags: tuple[str, ...] = field(default=())


MAX_FRONT_MATTER = 64 * 1024
"""Characters of front matter read; longer front matter is ignored (the YAML reader is pure Python,
and takes seconds and gigabytes over megabytes of it)."""


def parse_markdown(data: bytes) -> list[Article]:
    """Parse a Markdown file into one Article (see the module docstring)."""
    lines = decode_text(data).split("\n")
    front, lines = _split_front_matter(lines)
    title, lines = (front.title, lines) if front.title else _take_title(lines)
    if title is None:
        raise DocumentError("empty document")
    return [
        Article(
            title=title,
            body=_body(lines),
            author=front.author,
            published=front.published,
            tags=front.tags,
        )
    ]


def _split_front_matter(lines: list[str]) -> tuple[_FrontMatter, list[str]]:
    if not lines or lines[0].rstrip() != _FRONT_MATTER_OPEN:
        return _FrontMatter(), lines
    for end in range(1, len(lines)):
        if lines[end].rstrip() in _FRONT_MATTER_CLOSE:
            return _read_front_matter("\n".join(lines[1:end])), lines[end + 1 :]
    # No closing line: a thematic break, not front matter.
    return _FrontMatter(), lines


def _read_front_matter(text: str) -> _FrontMatter:
    if len(text) > MAX_FRONT_MATTER:
        return _FrontMatter()  # a title, a date and tags are a few lines: this is not that
    try:
        loaded = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        # ValueError: a date that does not exist (2026-02-30), an integer past Python's digit
        # limit. Front matter that cannot be read is ignored, as malformed YAML is.
        return _FrontMatter()
    if not isinstance(loaded, dict):
        return _FrontMatter()
    return _FrontMatter(
        title=_scalar(loaded.get("title")),
        published=parse_date(loaded.get("date")),
        author=_scalar(loaded.get("author")),
        tags=_tags(loaded.get("tags")),
    )


def _scalar(value: object) -> str | None:
    """A YAML scalar as text (``title: 1984`` is a title too); anything else is absent."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return str(value).strip() or None
        except ValueError:  # an integer past Python's digit limit (0xfff... or 1:59:59:...)
            return None
    return None


def _tags(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = list(value.split(","))
    elif isinstance(value, list):
        items = value
    else:
        return ()
    tags = (_scalar(item) for item in items)
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def _take_title(lines: list[str]) -> tuple[str | None, list[str]]:
    """The first heading (else the first non-empty line) and the lines without it."""
    in_fence = False
    first_filled: int | None = None
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.strip():
            continue
        if first_filled is None and not _RULE.match(line):
            first_filled = index
        if _ATX.match(line):
            title = _inline(_heading_text(line)).strip()
            if title:
                return title, lines[:index] + lines[index + 1 :]
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _SETEXT.match(following) and not _LINK_DEFINITION.match(line):
            return _inline(line).strip(), lines[:index] + lines[index + 2 :]
    if first_filled is None:
        return None, lines
    title = _inline(_QUOTE.sub("", lines[first_filled])).strip()
    return title or lines[first_filled].strip(), lines[:first_filled] + lines[first_filled + 1 :]


def _body(lines: list[str]) -> str:
    out: list[str] = []
    in_fence = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            out.append(line.rstrip())  # code is kept as written
            continue
        if _LINK_DEFINITION.match(line) or _RULE.match(line):
            continue
        if _SETEXT.match(line) and index > 0 and lines[index - 1].strip():
            continue  # the underline of a setext heading
        text = _heading_text(line) if _ATX.match(line) else _QUOTE.sub("", line)
        out.append(_inline(text).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def _heading_text(line: str) -> str:
    """An ATX heading's text: without its opening hashes and an optional closing run of hashes."""
    text = line.strip().lstrip("#").strip()
    unclosed = text.rstrip("#")
    if not unclosed or unclosed[-1] in " \t":
        text = unclosed.rstrip()
    return text


def _inline(text: str) -> str:
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text
