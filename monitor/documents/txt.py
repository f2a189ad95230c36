"""Plain-text documents in the "seed layout" -> one Article.

The seed layout, as the customer's sample files are written::

    Politics                      <- optional section label: becomes the article's only tag
    Kazakhstan orders to shoot... <- title
    Kazakh President Kassym-...   <- body, line breaks kept

The first non-empty line is a section label when it is short (at most four words), is not a
sentence (none of . ! ? ; : …) and another non-empty line follows it. Otherwise it is the title.
Blank lines before the title are skipped; the body keeps its line breaks, loses trailing spaces and
its leading and trailing blank lines. An empty or blank file raises DocumentError("empty document").
"""

from __future__ import annotations

from monitor.documents.decode import decode_text
from monitor.errors import DocumentError
from monitor.models import Article

_LABEL_MAX_WORDS = 4
_SENTENCE_PUNCTUATION = frozenset(".!?;:…")


def parse_txt(data: bytes) -> list[Article]:
    """Parse a seed-layout text file into one Article (see the module docstring)."""
    lines = [line.rstrip() for line in decode_text(data).split("\n")]
    filled = [index for index, line in enumerate(lines) if line.strip()]
    if not filled:
        raise DocumentError("empty document")
    tags: tuple[str, ...] = ()
    title_at = filled[0]
    first = lines[title_at].strip()
    if len(filled) > 1 and _is_label(first):
        tags = (first,)
        title_at = filled[1]
    body = "\n".join(lines[title_at + 1 :]).strip("\n")
    return [Article(title=lines[title_at].strip(), body=body, tags=tags)]


def _is_label(line: str) -> bool:
    return len(line.split()) <= _LABEL_MAX_WORDS and not _SENTENCE_PUNCTUATION & set(line)
