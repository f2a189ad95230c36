"""Alert -> message text, for each format a channel can take. Pure: no I/O, no clock, no globals.

Every alert shows the same facts: severity, rule name and id, the article's title, its link (or,
without one, where the file is), the source, when it was published, which terms matched, and an
excerpt around the hits with each hit emphasised:

=========  ========================  =============================================================
format     hit emphasis              untrusted text (title, excerpt, location, source, terms)
=========  ========================  =============================================================
text       ``*hit*``                 control characters removed, whitespace collapsed
markdown   ``**hit**``               CommonMark backslash escapes (flavour "standard"), or the
                                     Slack-safe form described below (flavour "slack")
html       ``<b>hit</b>``            ``html.escape``; links only when http(s)
=========  ========================  =============================================================

Article text is untrusted (RELIABILITY.md row 25): a feed can put ``<script>``, ``<!channel>``,
``"><img onerror=x>`` or ``*bold*`` in a title. So, in every format, control characters (terminal
escapes included) and bidirectional overrides are dropped and runs of whitespace become one space,
so no article text can start a line of its own (no injected headings, quotes or list items).

Slack flavour. With ``body_format=markdown`` Apprise's Slack plugin does not send our text as is:
it translates CommonMark to Slack mrkdwn (``**b**`` -> ``*b*``, ``\\<`` -> ``&lt;``, ``&`` ->
``&amp;``) but leaves a bare ``<`` alone, so ``<!channel>`` would reach Slack as a live mention.
The Slack flavour therefore writes CommonMark for that translator: ``<``, ``>``, ``[`` and ``]``
get backslash escapes (they arrive as ``&lt;``, ``&gt;``, literal brackets), ``&`` is left to
Apprise (escaping it here would show ``&amp;``), and ``@here``/``@channel``/``@everyone`` get a
word joiner after the ``@``. Slack documents no escape for ``*``, ``_``, ``~`` and backtick, and
the usual zero-width-space trick is what people use to *enable* formatting inside words, so in
article text these (and the backslash) are swapped for look-alike characters that Slack never
treats as markup: ``∗ ˍ ∼ ˋ ∖``.

The title (:attr:`Message.title`) is plain text in every format: Apprise escapes it where the
service needs it (Slack) or uses it as plain text (an e-mail subject). Services that have no title
field fold it into the body; for those, call :func:`render` with ``title_in_body=True`` and the
title line is written into the body in the body's format instead.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote, urlsplit

from monitor.models import Alert, Digest, Hit

__all__ = [
    "MARKDOWN_FLAVOURS",
    "Format",
    "Message",
    "digest_title",
    "render",
    "render_digest",
    "snippet",
    "title_line",
]


class Format(StrEnum):
    """The markup a channel's service takes; the values are Apprise's ``NotifyFormat`` values."""

    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


MARKDOWN_FLAVOURS: tuple[str, ...] = ("standard", "slack")
"""``standard``: CommonMark. ``slack``: CommonMark shaped for Apprise's Slack translator."""

ELLIPSIS = "…"
TITLE_WIDTH = 200
"""The article title is cut (at a word) to this many characters in the title line."""


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: a plain-text ``title`` and a ``body`` in ``format``."""

    title: str
    body: str
    format: Format


# --------------------------------------------------------------------------------------------
# Cleaning untrusted text

# C0/C1 controls except the whitespace that the collapse below handles, and the bidirectional
# marks and overrides that can make text display in a different order from what it says.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    """``text`` without control characters, on one line, runs of whitespace as one space."""
    return _SPACES.sub(" ", _INVISIBLE.sub("", text))


def _cut(text: str, width: int) -> str:
    """``text`` shortened to at most ``width`` characters at a word boundary, with an ellipsis."""
    if len(text) <= width:
        return text
    head = text[: width - 1]
    space = head.rfind(" ")
    if space > width // 2:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


# --------------------------------------------------------------------------------------------
# Snippet


def snippet(
    text: str, hits: Sequence[Hit], width: int = 240, focus: Hit | None = None
) -> list[tuple[str, bool]]:
    """The part of ``text`` around its first hit(s), as ``(text, is_hit)`` segments.

    With ``focus``, the window starts at that hit instead of the first one (hits before it are
    still emphasized when they fall inside the window).

    The window is about ``width`` characters: it starts at the first hit, takes every later hit
    that still fits, and shares what is left between the text before and after. It is cut at word
    boundaries, with ``…`` where text was left out. Overlapping or touching hits become one
    segment. Hits whose offsets do not point at their text in ``text`` are looked up by their text
    (ignoring case), and ignored when absent. Segments are on one line (whitespace collapsed,
    control characters removed) but not escaped. Without hits: the start of ``text``; empty text:
    ``[]``.
    """
    width = max(width, 1)
    spans = _spans(text, hits)
    if not spans:
        # Cleaning only shortens text, so a few widths of raw text are plenty to fill one.
        head = _clean(text[: width * 8]).strip()
        return [(_cut(head, width), False)] if head else []

    anchor = 0
    if focus is not None:
        anchor = next((i for i, (start, _end) in enumerate(spans) if start >= focus.start), 0)
    first_start = spans[anchor][0]
    core_end = spans[anchor][1]
    for _start, end in spans[anchor + 1 :]:
        if end - first_start > width:
            break
        core_end = max(core_end, end)

    # Share the room left between both sides; a side that runs out gives its share to the other.
    room = max(0, width - (core_end - first_start))
    before = min(first_start, room // 2)
    after = min(len(text) - core_end, room - before)
    before = min(first_start, room - after)
    lo, hi = first_start - before, core_end + after

    if lo > 0 and not text[lo - 1].isspace():
        # Mid-word: start at the next word, but never after the first hit.
        gap = _first_space(text, lo, first_start)
        lo = first_start if gap is None else gap + 1
    if hi < len(text) and not text[hi].isspace():
        gap = _last_space(text, core_end, hi)
        hi = core_end if gap is None else gap
    for start, end in spans:
        if start < hi < end:
            # A later hit would be cut in two: stop before it instead.
            hi = start

    segments: list[tuple[str, bool]] = []
    position = lo
    for start, end in spans:
        if start >= hi:
            break
        if end <= position or start < lo:
            continue  # before the window (or a hit cut by its start)
        if start > position:
            segments.append((text[position:start], False))
        segments.append((text[start:end], True))
        position = end
    if position < hi:
        segments.append((text[position:hi], False))

    cleaned = [(_clean(part), is_hit) for part, is_hit in segments]
    if cleaned and not cleaned[0][1]:
        cleaned[0] = (cleaned[0][0].lstrip(), False)
    if cleaned and not cleaned[-1][1]:
        cleaned[-1] = (cleaned[-1][0].rstrip(), False)
    if text[:lo].strip():
        cleaned.insert(0, (ELLIPSIS, False))
    if text[hi:].strip():
        cleaned.append((ELLIPSIS, False))
    return _merge(cleaned)


def _spans(text: str, hits: Sequence[Hit]) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, end)`` of the hits in ``text``, without surrounding whitespace."""
    found: list[tuple[int, int]] = []
    for hit in hits:
        start, end = hit.start, hit.end
        if not (0 <= start < end <= len(text) and text[start:end] == hit.text):
            # Offsets from another version of the text: look for the hit's words instead.
            found_at = re.search(re.escape(hit.text), text, re.IGNORECASE) if hit.text else None
            if found_at is None:
                continue
            start, end = found_at.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            found.append((start, end))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _first_space(text: str, lo: int, hi: int) -> int | None:
    for index in range(lo, hi):
        if text[index].isspace():
            return index
    return None


def _last_space(text: str, lo: int, hi: int) -> int | None:
    for index in range(hi - 1, lo - 1, -1):
        if text[index].isspace():
            return index
    return None


def _merge(segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Drop empty segments and join neighbours of the same kind."""
    merged: list[tuple[str, bool]] = []
    for part, is_hit in segments:
        if not part:
            continue
        if merged and merged[-1][1] == is_hit:
            merged[-1] = (merged[-1][0] + part, is_hit)
        else:
            merged.append((part, is_hit))
    return merged


# --------------------------------------------------------------------------------------------
# Escaping per format

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can start
# or end markup inline (emphasis, code, links, autolinks and raw HTML, entities, strikethrough).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~!|])")
# At the start of a line these make headings, quotes and list items.
_MD_LINE_START = re.compile(r"^([#>+-]|\d+[.)])")

_SLACK_ESCAPED = re.compile(r"([<>\[\]])")
_SLACK_LOOKALIKES = str.maketrans(
    {
        "*": "\u2217",  # ∗ asterisk operator
        "_": "\u02cd",  # ˍ modifier letter low macron
        "~": "\u223c",  # ∼ tilde operator
        "`": "\u02cb",  # ˋ modifier letter grave accent
        "\\": "\u2216",  # ∖ set minus: a backslash would start an escape in Apprise's translator
    }
)
_SLACK_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def _md_standard(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_slack(text: str) -> str:
    text = _SLACK_ESCAPED.sub(r"\\\1", text.translate(_SLACK_LOOKALIKES))
    return _SLACK_BROADCAST.sub("@" + _WORD_JOINER, text)


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _safe_link(link: str | None) -> str | None:
    """``link`` when it is an absolute http(s) URL, with unsafe characters percent-encoded."""
    if not link:
        return None
    link = _INVISIBLE.sub("", link.strip())
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # Spaces, quotes, angle brackets, pipes and backticks would end an autolink, an attribute or
    # a Slack <url|label>: encode everything outside RFC 3986's reserved and unreserved sets.
    return quote(link, safe="/:?#[]@!$&'()*+,;=%-._~")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # At the edges of the calendar, show the time as given rather than fail the alert.
    with contextlib.suppress(OverflowError, ValueError):
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True, slots=True)
class _Style:
    """How one format writes the pieces of an alert."""

    escape: Callable[[str], str]
    hit: Callable[[str], str]
    label: Callable[[str], str]
    link: Callable[[str], str]
    line_end: str
    fields: Callable[[str], str]
    paragraph: str
    excerpt: Callable[[str], str]
    title: Callable[[str], str]


def _style(fmt: Format, flavour: str) -> _Style:
    if fmt is Format.HTML:
        return _Style(
            escape=_html,
            hit=lambda s: f"<b>{_html(s)}</b>",
            label=lambda s: f"<b>{s}</b>",
            link=lambda url: f'<a href="{_html(url)}">{_html(url)}</a>',
            # No newlines in the HTML source: HTML-to-text converters (Apprise's, for the
            # text/plain part of an e-mail) would turn them into stray spaces.
            line_end="<br>",
            fields=lambda s: f"<p>{s}</p>",
            paragraph="",
            excerpt=lambda s: f"<blockquote>{s}</blockquote>",
            title=lambda s: f"<b>{_html(s)}</b>",
        )
    if fmt is Format.MARKDOWN:
        escape = _md_slack if flavour == "slack" else _md_standard
        return _Style(
            escape=escape,
            hit=lambda s: f"**{escape(s)}**",
            label=lambda s: f"**{s}**",
            link=lambda url: f"<{url}>",
            # Two trailing spaces: a CommonMark hard line break; Slack ignores them.
            line_end="  \n",
            fields=lambda s: s,
            paragraph="\n\n",
            excerpt=lambda s: "> " + s,
            title=lambda s: f"**{escape(s)}**",
        )
    return _Style(
        escape=lambda s: s,
        hit=lambda s: f"*{s}*",
        label=lambda s: s,
        link=lambda url: url,
        line_end="\n",
        fields=lambda s: s,
        paragraph="\n\n",
        excerpt=lambda s: s,
        title=lambda s: s,
    )


def _excerpt_field(alert: Alert) -> str | None:
    """The field to quote: the first keyword hit outside the title (the title is shown anyway),
    else the first keyword hit's, else the first hit's."""
    keyword_fields = [hit.field for hit in alert.hits if hit.kind == "keyword"]
    for field in keyword_fields:
        if field != "title":
            return field
    if keyword_fields:
        return keyword_fields[0]
    return alert.hits[0].field if alert.hits else None


def _terms(hits: Sequence[Hit]) -> list[str]:
    seen: dict[str, None] = {}
    for hit in hits:
        term = _clean(hit.term).strip()
        if term:
            seen.setdefault(term, None)
    return list(seen)


def title_line(alert: Alert) -> str:
    """``[CRITICAL] Rule name: Article title``, plain text on one line."""
    article = _cut(_clean(alert.title).strip(), TITLE_WIDTH) or "(untitled)"
    rule = _clean(alert.rule_name).strip() or alert.rule_id
    return f"[{alert.severity.value.upper()}] {rule}: {article}"


def render(
    alert: Alert,
    fmt: Format,
    *,
    markdown_flavour: str = "standard",
    title_in_body: bool = False,
    width: int = 240,
) -> Message:
    """The message for ``alert`` in ``fmt`` (see the module docstring for each format's rules).

    ``markdown_flavour`` matters for Markdown only: ``"standard"`` or ``"slack"``.
    ``title_in_body`` writes the title line at the top of the body (in the body's format) and
    leaves :attr:`Message.title` empty, for services without a title field.
    Raises ValueError for an unknown flavour.
    """
    if markdown_flavour not in MARKDOWN_FLAVOURS:
        raise ValueError(f"unknown markdown flavour {markdown_flavour!r}")
    fmt = Format(fmt)
    style = _style(fmt, markdown_flavour)
    esc = style.escape

    def line(label: str, value: str) -> str:
        return f"{style.label(label + ':')} {value}"

    lines: list[str] = []
    title = title_line(alert)
    if title_in_body:
        lines.append(style.title(title))
    lines.append(line("Severity", alert.severity.value.upper()))
    rule_name = _clean(alert.rule_name).strip()
    rule_id = _clean(alert.rule_id).strip()
    rule = esc(rule_id)
    if rule_name and rule_name != rule_id:
        rule = f"{esc(rule_name)} ({rule})"
    lines.append(line("Rule", rule))
    lines.append(line("Article", esc(_clean(alert.title).strip() or "(untitled)")))
    link = _safe_link(alert.link)
    location = _clean(alert.location or "").strip()
    if link is not None:
        lines.append(line("Link", style.link(link)))
    elif location:
        lines.append(line("Location", esc(location)))
    lines.append(line("Source", esc(_clean(alert.source_id).strip() or "unknown")))
    lines.append(line("Published", _when(alert.published)))
    terms = _terms(alert.hits)
    if terms:
        lines.append(line("Matched", ", ".join(esc(term) for term in terms)))

    body = style.fields(style.line_end.join(lines))
    excerpt = _render_excerpt(alert, style, fmt, markdown_flavour, width)
    if excerpt:
        body += style.paragraph + style.excerpt(excerpt)
    return Message(title="" if title_in_body else title, body=body, format=fmt)


def digest_title(digest: Digest) -> str:
    """``[HIGH] 12 alerts: Rule A, Rule B``: the highest severity, the count and the rules."""
    alerts = digest.alerts
    top = max((alert.severity for alert in alerts), key=lambda severity: severity.rank)
    rules = list(dict.fromkeys(_clean(a.rule_name).strip() or a.rule_id for a in alerts))
    named = ", ".join(rules[:3]) + (f" and {len(rules) - 3} more" if len(rules) > 3 else "")
    count = f"{len(alerts)} alert" + ("s" if len(alerts) != 1 else "")
    return _cut(f"[{top.value.upper()}] {count}: {named}", TITLE_WIDTH)


def render_digest(
    digest: Digest,
    fmt: Format,
    *,
    markdown_flavour: str = "standard",
    title_in_body: bool = False,
    width: int = 160,
) -> Message:
    """One message listing every alert of ``digest``: for each, its title line, link, source
    and a short excerpt, escaped as :func:`render` escapes a single alert."""
    if markdown_flavour not in MARKDOWN_FLAVOURS:
        raise ValueError(f"unknown markdown flavour {markdown_flavour!r}")
    fmt = Format(fmt)
    style = _style(fmt, markdown_flavour)
    esc = style.escape
    title = digest_title(digest)
    parts: list[str] = [style.title(title)] if title_in_body else []
    for alert in digest.alerts:
        lines = [style.label(esc(title_line(alert)))]
        link = _safe_link(alert.link)
        where = style.link(link) if link is not None else esc(_clean(alert.location or ""))
        source = esc(_clean(alert.source_id).strip() or "unknown")
        lines.append(f"{source}, {_when(alert.published)}" + (f": {where}" if where else ""))
        part = style.fields(style.line_end.join(lines))
        excerpt = _render_excerpt(alert, style, fmt, markdown_flavour, width)
        if excerpt:
            part += style.paragraph + style.excerpt(excerpt)
        parts.append(part)
    return Message(
        title="" if title_in_body else title, body=style.paragraph.join(parts), format=fmt
    )


def _render_excerpt(alert: Alert, style: _Style, fmt: Format, flavour: str, width: int) -> str:
    field = _excerpt_field(alert)
    if field is None:
        return ""
    text = alert.fields.get(field)
    if text is None and field == "title":
        text = alert.title
    if not text:
        return ""
    in_field = [hit for hit in alert.hits if hit.field == field]
    focus = next((hit for hit in in_field if hit.kind == "keyword"), None)
    segments = snippet(text, in_field, width, focus)
    out = [style.hit(part) if is_hit else style.escape(part) for part, is_hit in segments]
    if fmt is Format.MARKDOWN and flavour == "standard" and out and not segments[0][1]:
        # The excerpt starts a line: "1." or "#" there would make a list or a heading.
        out[0] = _MD_LINE_START.sub(r"\\\1", out[0])
    return "".join(out)
