"""HTML -> the text a person reads on the page, and the page's title.

Built on the stdlib ``html.parser``, which is lenient: unclosed tags, stray end tags and broken
markup never raise here, and a parser failure deep in a declaration keeps the text read so far.

``html_to_text`` drops what is not the article (scripts, styles, the head, navigation, footers,
asides, forms, ...). Block elements end a paragraph, ``<br>`` and list items end a line; runs of
spaces inside a line collapse to one and at most one blank line separates paragraphs. Entities are
unescaped. An empty string means the page has no readable text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset(
    {"script", "style", "noscript", "template", "svg", "head", "nav", "footer", "aside", "form"}
)
# Elements that end a paragraph: a blank line around them.
_PARAGRAPHS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "section", "article",
        "main", "header", "ul", "ol", "dl", "table", "figure", "figcaption", "details",
        "summary", "address", "hr", "body",
    }
)  # fmt: skip
# Elements that end a line, without a blank line.
_LINES = frozenset({"br", "div", "li", "tr", "dt", "dd", "caption", "td", "th"})
# Elements with no end tag: they must not open a skipped region that nothing closes.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)

_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Extractor(HTMLParser):
    """Collects the readable text, the <title> and the first <h1> in one pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        # Newlines owed before the next text: 1 ends a line, 2 a paragraph. Breaks do not add up,
        # so </li><li> or </p><p> never leave more than one blank line.
        self._pending_breaks = 0
        self.title: str | None = None
        self.h1: str | None = None
        self._skipping: list[str] = []  # open skipped elements, innermost last
        self._open: dict[str, int] = {}  # how many of each are in _skipping
        self._capture: str | None = None  # "title" or "h1" while inside one
        self._captured: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and self._open.get("head"):
            # An HTML page may omit </head>; <body> closes it.
            self._close(self._skipping.index("head"))
        if tag in _SKIPPED and tag not in _VOID:
            self._skipping.append(tag)
            self._open[tag] = self._open.get(tag, 0) + 1
        if tag == "title" and self.title is None:
            self._start_capture("title")
        elif tag == "h1" and self.h1 is None and not self._skipping:
            self._start_capture("h1")
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <svg/>: nothing opens, but a line may still end.
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open.get(tag):
            # Closing an outer skipped element closes any unclosed one inside it. The search
            # starts at the innermost: thousands of open elements cost no copy per end tag.
            depth = len(self._skipping) - 1
            while self._skipping[depth] != tag:
                depth -= 1
            self._close(depth)
        if tag == self._capture:
            self._end_capture()
        self._break(tag)

    def _close(self, depth: int) -> None:
        """Close the skipped elements from ``depth`` inward."""
        for tag in self._skipping[depth:]:
            self._open[tag] -= 1
        del self._skipping[depth:]

    def handle_data(self, data: str) -> None:
        # The title lives in the skipped <head>; an <h1> ignores scripts nested in it.
        if self._capture == "title" or (self._capture == "h1" and not self._skipping):
            self._captured.append(data)
        if self._skipping:
            return
        text = _SPACES.sub(" ", data)
        if self._pending_breaks and text == " ":
            return  # indentation between blocks, not a space in the text
        if self._pending_breaks:
            self.parts.append("\n" * self._pending_breaks)
            self._pending_breaks = 0
        self.parts.append(text)

    def close(self) -> None:
        super().close()
        if self._capture is not None:
            self._end_capture()

    def _break(self, tag: str) -> None:
        if self._skipping:
            return
        if tag in _PARAGRAPHS:
            self._pending_breaks = 2
        elif tag == "br":
            # Unlike the others, <br> is the break itself: <br><br> leaves a blank line.
            self._pending_breaks = min(self._pending_breaks + 1, 2)
        elif tag in _LINES:
            self._pending_breaks = max(self._pending_breaks, 1)

    def _start_capture(self, tag: str) -> None:
        self._capture = tag
        self._captured = []

    def _end_capture(self) -> None:
        text = " ".join("".join(self._captured).split()) or None
        if self._capture == "title":
            self.title = text
        else:
            self.h1 = text
        self._capture = None

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self.parts).split("\n"))
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def feed_html(parser: HTMLParser, html: str) -> None:
    """Run ``parser`` over the whole of ``html`` in linear time, never raising.

    After ``feed``, the parser keeps back only a construct cut off by the end of the document (a
    tag, comment or declaration with no end). HTML5 drops such a construct, and so do we: letting
    ``close`` re-read it piece by piece, as Python 3.11.7's parser does, takes quadratic time on
    crafted input ("<a " repeated: 60 kB took 47 s). CPython 3.11.13 made the same change upstream.
    """
    try:
        parser.feed(html)
        if parser.rawdata.startswith("<"):
            parser.rawdata = ""
        parser.close()
    except AssertionError:
        # _markupbase raises AssertionError on some malformed declarations ("<![foo"); what was
        # read before them is still the page's text.
        pass


def _extract(html: str) -> _Extractor:
    extractor = _Extractor()
    feed_html(extractor, html)
    return extractor


def html_to_text(html: str) -> str:
    """The readable text of ``html``: paragraphs separated by one blank line."""
    return _extract(html).text()


def html_title(html: str) -> str | None:
    """The page's <title>, else its first <h1> outside skipped regions, else None."""
    extractor = _extract(html)
    return extractor.title or extractor.h1
