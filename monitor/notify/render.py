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
word joiner after the ``@`` (as in every format, with Discord's numbered mentions: other services
ping on them too). Slack documents no escape for ``*``, ``_``, ``~`` and backtick, and
the usual zero-width-space trick is what people use to *enable* formatting inside words, so in
article text these (and the backslash) are swapped for look-alike characters that Slack never
treats as markup: ``∗ ˍ ∼ ˋ ∖``.

The title (:attr:`Message.title`) is plain text in every format: Apprise escapes it where the
service needs it (Slack) or uses it as plain text (an e-mail subject). Services that have no title
field fold it into the body; for those, call :func:`render` with ``title_in_body=True`` and the
title line is written into the body in the body's format instead.

Templates. The body is written by a Jinja2 template (``monitor/notify/templates/``), one per kind
(``alert``, ``digest``) and format, which an operator may override from the config's templates
folder (see docs/templates.md and :class:`TemplateSet`). Escaping is not the template author's
job: templates run in a sandbox with ``StrictUndefined``; HTML templates autoescape, and in the
other formats every ``{{ value }}`` passes through the format's escaping above (Jinja's
``finalize``), so a custom template cannot print article text unescaped by forgetting a filter.
Only values that are already markup in the format get through as they are: the excerpt rendered
by the ``highlight`` filter, ``br``, and ``alert.link`` in Markdown and text (a vetted http(s) URL,
percent-encoded so that it cannot end an autolink or a link destination). A custom template that
fails for one alert is logged at WARNING and the alert is rendered with the default instead.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from monitor.errors import ConfigError, Problem
from monitor.models import Alert, Digest, Hit, Outlet, Severity

__all__ = [
    "KINDS",
    "MARKDOWN_FLAVOURS",
    "AlertView",
    "DigestView",
    "Format",
    "Message",
    "OutletView",
    "Segment",
    "TemplateChoice",
    "TemplateSet",
    "default_templates",
    "digest_title",
    "excerpt",
    "override_names",
    "render",
    "render_digest",
    "safe_link",
    "snippet",
    "title_line",
    "visible",
]

log = logging.getLogger(__name__)


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

# C0/C1 controls except the whitespace that the collapse below handles, the bidirectional
# marks and overrides that can make text display in a different order from what it says, and
# lone surrogates (no service can encode them: an e-mail with one fails at every attempt).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SPACES = re.compile(r"\s+")
# What chat services turn into a notification of everyone, or of a user or role by number
# (Discord's <@123456789012345678>, which Apprise finds even bare): a word joiner after the @
# keeps the text and stops the ping, in every format.
_MENTION = re.compile(r"@(?=(?:here|channel|everyone)\b|&?\d{5,}\b)", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def _clean(text: str) -> str:
    """``text`` without control characters, on one line, runs of whitespace as one space, and
    no live mention."""
    return _MENTION.sub("@" + _WORD_JOINER, _SPACES.sub(" ", _INVISIBLE.sub("", text)))


def visible(text: str) -> str:
    """``text`` without control characters and bidirectional overrides; line breaks and other
    whitespace kept (for showing a whole text, as the dashboard does)."""
    return _INVISIBLE.sub("", text)


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
# At the start of a line these make headings, quotes, list items and (after a line of text)
# setext headings; ">" is escaped anywhere already.
_MD_LINE_START = re.compile(r"^(?:([#+=-])|(\d+)([.)]))")

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


def _md_standard(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_line_start(text: str) -> str:
    """``text`` with what would make a heading or list item at the start of a line escaped
    (a backslash before punctuation is invisible in CommonMark, so this is safe anywhere)."""
    return _MD_LINE_START.sub(
        lambda found: "\\" + found[1] if found[1] else found[2] + "\\" + found[3], text, count=1
    )


def _md_slack(text: str) -> str:
    # @here and the like were defused by _clean, which every dialect applies first.
    return _SLACK_ESCAPED.sub(r"\\\1", text.translate(_SLACK_LOOKALIKES))


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def safe_link(link: str | None) -> str | None:
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


_MD_URL = str.maketrans({"(": "%28", ")": "%29", "[": "%5B", "]": "%5D", "*": "%2A"})


def _md_url(url: str) -> str:
    """A :func:`safe_link` URL that also cannot end a Markdown link destination, open a link or
    start emphasis: brackets, parentheses and asterisks after the host percent-encoded."""
    parts = urlsplit(url)
    cut = len(parts.scheme) + 3 + len(parts.netloc)
    return url[:cut] + url[cut:].translate(_MD_URL)


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
# What templates see

KINDS: tuple[str, ...] = ("alert", "digest")
"""A template renders one alert or a digest of several."""

Kind = Literal["alert", "digest"]


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of an excerpt: its ``text`` (one line, not yet escaped) and whether it is a hit."""

    text: str
    hit: bool


@dataclass(frozen=True, slots=True)
class OutletView:
    """Another outlet that reported an alert's story, as templates see it."""

    source: str
    title: str
    link: str | None
    published: str


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as templates see it: every text cleaned (one line, no control characters) and
    escaped when printed; see docs/templates.md for each attribute."""

    match_id: int
    severity: str
    rule_id: str
    rule_name: str
    rule: str
    title: str
    heading: str
    source: str
    link: str | None
    location: str | None
    published: str
    matched: str
    terms: tuple[str, ...]
    excerpt: tuple[Segment, ...]
    outlets: tuple[OutletView, ...]


@dataclass(frozen=True, slots=True)
class DigestView:
    """A digest as templates see it."""

    channel: str
    reason: str
    severity: str
    count: int
    since: str | None
    until: str | None
    alerts: tuple[AlertView, ...]


def _excerpt_field(alert: Alert) -> str | None:
    """The field to quote: the first keyword hit outside the title (the title is shown anyway),
    else the first keyword hit's, else the first hit's."""
    keyword_fields = [hit.field for hit in alert.hits if hit.kind == "keyword"]
    for name in keyword_fields:
        if name != "title":
            return name
    if keyword_fields:
        return keyword_fields[0]
    return alert.hits[0].field if alert.hits else None


def excerpt(alert: Alert, width: int = 240) -> tuple[Segment, ...]:
    """The excerpt an alert shows, as segments: :func:`snippet` of the field with the first
    keyword hit outside the title (else the first keyword hit's, else the first hit's)."""
    name = _excerpt_field(alert)
    if name is None:
        return ()
    text = alert.fields.get(name)
    if text is None and name == "title":
        text = alert.title
    if not text:
        return ()
    in_field = [hit for hit in alert.hits if hit.field == name]
    focus = next((hit for hit in in_field if hit.kind == "keyword"), None)
    return tuple(Segment(part, is_hit) for part, is_hit in snippet(text, in_field, width, focus))


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


def digest_title(digest: Digest) -> str:
    """``[HIGH] 12 alerts: Rule A, Rule B``: the highest severity, the count and the rules."""
    alerts = digest.alerts
    top = max((alert.severity for alert in alerts), key=lambda severity: severity.rank)
    rules = list(dict.fromkeys(_clean(a.rule_name).strip() or a.rule_id for a in alerts))
    named = ", ".join(rules[:3]) + (f" and {len(rules) - 3} more" if len(rules) > 3 else "")
    count = f"{len(alerts)} alert" + ("s" if len(alerts) != 1 else "")
    return _cut(f"[{top.value.upper()}] {count}: {named}", TITLE_WIDTH)


def _one_line(text: str | None, default: str = "") -> str:
    return _clean(text or "").strip() or default


def _alert_view(alert: Alert, dialect: _Dialect, width: int) -> AlertView:
    rule_id = _one_line(alert.rule_id)
    rule_name = _one_line(alert.rule_name, rule_id)
    return AlertView(
        match_id=alert.match_id,
        severity=alert.severity.value,
        rule_id=rule_id,
        rule_name=rule_name,
        rule=f"{rule_name} ({rule_id})" if rule_name != rule_id else rule_id,
        title=_one_line(alert.title, "(untitled)"),
        heading=title_line(alert),
        source=_one_line(alert.source_id, "unknown"),
        link=dialect.link(alert.link),
        location=_one_line(alert.location) or None,
        published=_when(alert.published),
        matched=_when(alert.matched_at),
        terms=tuple(_terms(alert.hits)),
        excerpt=excerpt(alert, width),
        outlets=tuple(_outlet_view(outlet, dialect) for outlet in alert.outlets),
    )


def _outlet_view(outlet: Outlet, dialect: _Dialect) -> OutletView:
    return OutletView(
        source=_one_line(outlet.source_id, "unknown"),
        title=_one_line(outlet.title, "(untitled)"),
        link=dialect.link(outlet.link),
        published=_when(outlet.published),
    )


def _digest_view(digest: Digest, dialect: _Dialect, width: int) -> DigestView:
    top = max((alert.severity for alert in digest.alerts), key=lambda severity: severity.rank)
    return DigestView(
        channel=_one_line(digest.channel),
        reason=_one_line(digest.reason),
        severity=top.value,
        count=len(digest.alerts),
        since=_when(digest.since) if digest.since is not None else None,
        until=_when(digest.until) if digest.until is not None else None,
        alerts=tuple(_alert_view(alert, dialect, width) for alert in digest.alerts),
    )


# --------------------------------------------------------------------------------------------
# Dialects: a format (and Markdown flavour) with its escaping


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How one format (and flavour) writes untrusted text, hits and links."""

    key: str
    format: Format
    escape: Callable[[str], str]
    """Untrusted text -> the format's markup."""
    emphasis: tuple[str, str]
    """What ``highlight`` puts around a hit."""
    br: str
    """A hard line break, for the end of a line (Markdown needs two spaces there)."""
    url: Callable[[str], str]
    """A :func:`safe_link` URL -> what templates get as a link."""

    def link(self, link: str | None) -> str | None:
        safe = safe_link(link)
        return None if safe is None else self.url(safe)


def _markup(text: str) -> str:
    # Markup marks a value that is already in the format's markup, so finalize lets it through.
    return Markup(text)  # noqa: S704 (only for values escaped or vetted for their format)


_DIALECTS: dict[str, _Dialect] = {
    "text": _Dialect("text", Format.TEXT, _clean, ("*", "*"), "", _markup),
    "markdown": _Dialect(
        "markdown",
        Format.MARKDOWN,
        lambda text: _md_line_start(_md_standard(_clean(text))),
        ("**", "**"),
        "  ",
        lambda url: _markup(_md_url(url)),
    ),
    "slack": _Dialect(
        "slack",
        Format.MARKDOWN,
        lambda text: _md_slack(_clean(text)),
        ("**", "**"),
        "  ",
        lambda url: _markup(_md_url(url)),
    ),
    # Autoescaped: a link is plain text to the template, escaped inside its attribute.
    "html": _Dialect("html", Format.HTML, _html, ("<b>", "</b>"), "<br>", str),
}


def _dialect(fmt: Format, flavour: str) -> _Dialect:
    if flavour not in MARKDOWN_FLAVOURS:
        raise ValueError(f"unknown markdown flavour {flavour!r}")
    if fmt is Format.MARKDOWN:
        return _DIALECTS["slack" if flavour == "slack" else "markdown"]
    return _DIALECTS[fmt.value]


_LINE_BREAKS = re.compile(r"[\r\n]+[ \t]*")


def _environment(dialect: _Dialect, folder: Path | None) -> SandboxedEnvironment:
    """The sandbox that compiles and renders one dialect's templates: the defaults under
    ``default/`` and the files of ``folder`` by their own names."""
    loaders: list[jinja2.BaseLoader] = [
        jinja2.PrefixLoader({"default": jinja2.PackageLoader("monitor.notify", "templates")})
    ]
    if folder is not None:
        loaders.append(jinja2.FileSystemLoader(folder))
    html_format = dialect.format is Format.HTML

    def finalize(value: object) -> object:
        """Every ``{{ value }}`` on its way out: escaped unless it is markup already."""
        if value is None:
            return ""
        if html_format or isinstance(value, Markup):
            return value  # HTML autoescapes after this
        return dialect.escape(str(value))

    def highlight(segments: Sequence[Segment]) -> Markup:
        """An excerpt's segments in the format, each hit emphasised."""
        before, after = dialect.emphasis
        return Markup(  # noqa: S704 (every piece of article text is escaped here)
            "".join(
                f"{before}{dialect.escape(part.text)}{after}"
                if part.hit
                else dialect.escape(part.text)
                for part in segments
            )
        )

    def oneline(value: str) -> str:
        """``value`` without its line breaks and the indentation after them."""
        joined = _LINE_BREAKS.sub("", str(value))
        return Markup(joined) if isinstance(value, Markup) else joined  # noqa: S704

    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=html_format,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["highlight"] = highlight
    env.filters["oneline"] = oneline
    if not html_format:
        # Jinja's own escape filters write HTML entities, which Markdown and text would show as
        # they are (and let "*" through): use the format's escaping instead.
        def escape(value: object) -> Markup:
            return value if isinstance(value, Markup) else _markup_of(dialect.escape(str(value)))

        env.filters["e"] = env.filters["escape"] = escape
        env.filters["forceescape"] = lambda value: _markup_of(dialect.escape(str(value)))
    env.globals["br"] = _markup_of(dialect.br)
    env.globals["format"] = dialect.format.value
    return env


def _markup_of(text: str) -> Markup:
    return Markup(text)  # noqa: S704 (callers pass text escaped for its format)


# --------------------------------------------------------------------------------------------
# Template sets

_OVERRIDE = re.compile(
    r"(?:(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\.)?(?P<kind>alert|digest)\.(?P<format>text|markdown|html)\.j2"
)
"""``[NAME.]alert|digest.<format>.j2``: the file names an override folder's top level holds."""


def override_names(folder: Path) -> frozenset[str]:
    """The template names (``NAME`` of ``NAME.alert.html.j2``, ...) that ``folder`` provides;
    empty when the folder does not exist. Lists files only, compiles nothing."""
    if not folder.is_dir():
        return frozenset()
    names = set()
    for path in folder.iterdir():
        found = _OVERRIDE.fullmatch(path.name)
        if found is not None and found["name"] and path.is_file():
            names.add(found["name"])
    return frozenset(names)


def _override_files(
    folder: Path, problems: list[Problem]
) -> dict[tuple[str, str, str | None], Path]:
    """``(kind, format, name or None) -> file`` for the overrides in ``folder``. A top-level
    ``.j2`` file with another name is a problem: most likely a typo that would be ignored."""
    if not folder.exists():
        return {}
    if not folder.is_dir():
        problems.append(Problem(_display(folder), 0, "the templates path is not a folder"))
        return {}
    files: dict[tuple[str, str, str | None], Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix != ".j2" or not path.is_file():
            continue
        found = _OVERRIDE.fullmatch(path.name)
        if found is None:
            problems.append(
                Problem(
                    _display(path),
                    0,
                    "not a template name: expected alert.<format>.j2, digest.<format>.j2 or "
                    "NAME.alert.<format>.j2 / NAME.digest.<format>.j2 with format text, markdown "
                    "or html (put included templates in a subfolder)",
                )
            )
            continue
        files[(found["kind"], found["format"], found["name"])] = path
    return files


def _display(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _where(exc: BaseException, template: jinja2.Template) -> tuple[str, int]:
    """The template file and line an error was raised at (Jinja puts template frames in the
    traceback); the template's own file and line 0 when there is none."""
    place = (template.filename or template.name or "?", 0)
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            place = (filename, trace.tb_lineno)
        trace = trace.tb_next
    return _display(place[0]), place[1]


def _sample_alert() -> Alert:
    """A made-up alert with every field set (a link, hits, other outlets), for trial renders."""
    body = "Officials said troops were ordered to shoot without warning, according to reports."
    start = body.index("shoot")
    return Alert(
        match_id=0,
        rule_id="sample-rule",
        rule_name="Sample rule",
        severity=Severity.HIGH,
        title="Sample article: troops ordered to shoot",
        source_id="sample-source",
        link="https://example.org/news/sample",
        location="sample/article.txt",
        published=datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        matched_at=datetime(2024, 1, 1, 12, 5, tzinfo=UTC),
        hits=(Hit(term="shoot", field="body", start=start, end=start + 5, text="shoot"),),
        fields={"body": body},
        outlets=(
            Outlet(
                source_id="other-source",
                title="Troops told to shoot",
                link="https://example.com/story",
                published=datetime(2024, 1, 1, 12, 3, tzinfo=UTC),
            ),
        ),
    )


def _bare_alert() -> Alert:
    """An alert with every optional field empty, so a trial render also takes the other branch
    of each ``{% if %}``."""
    return Alert(
        match_id=0,
        rule_id="sample-rule",
        rule_name="",
        severity=Severity.INFO,
        title="",
        source_id="",
        link=None,
        location=None,
        published=None,
        matched_at=datetime(2024, 1, 1, 12, 5, tzinfo=UTC),
        hits=(),
    )


def _trial_contexts(kind: str, dialect: _Dialect) -> list[dict[str, Any]]:
    alerts = (_sample_alert(), _bare_alert())
    if kind == "alert":
        return [
            {
                "alert": _alert_view(alert, dialect, 240),
                "title": title_line(alert),
                "title_in_body": in_body,
            }
            for alert, in_body in zip(alerts, (True, False), strict=True)
        ]
    digest = Digest("sample-channel", "burst", alerts)
    return [
        {"digest": _digest_view(digest, dialect, 160), "title": digest_title(digest), **extra}
        for extra in ({"title_in_body": True}, {"title_in_body": False})
    ]


class TemplateSet:
    """The templates messages are written with: the defaults shipped in
    ``monitor/notify/templates/`` and the overrides of one folder, each compiled once per dialect
    (text, Markdown, Slack Markdown, HTML) when the set is built.

    An override is a top-level file of ``folder`` named ``alert.<format>.j2`` or
    ``digest.<format>.j2`` (used instead of the default for every channel), or
    ``NAME.alert.<format>.j2`` / ``NAME.digest.<format>.j2`` (used where a channel or a rule sets
    ``template: NAME``). Templates may ``{% include %}`` or ``{% extends %}`` other files of the
    folder, and the defaults as ``default/alert.html.j2`` and so on.

    Building raises ConfigError listing, with file and line, every override that does not compile
    or fails on a sample alert (an undefined variable, say): so ``monitor check`` reports it, not
    the first alert. A missing folder (or None) means no overrides.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        problems: list[Problem] = []
        files = _override_files(folder, problems) if folder is not None else {}
        self.names = frozenset(name for _kind, _fmt, name in files if name is not None)
        """The names channels and rules may give as ``template:``."""
        self._defaults: dict[tuple[str, str], jinja2.Template] = {}
        self._overrides: dict[tuple[str, str, str | None], jinja2.Template] = {}
        for dialect in _DIALECTS.values():
            env = _environment(dialect, folder)
            for kind in KINDS:
                self._defaults[(dialect.key, kind)] = env.get_template(
                    f"default/{kind}.{dialect.format.value}.j2"
                )
            for (kind, fmt, name), path in files.items():
                if fmt != dialect.format.value:
                    continue
                template = _compile(env, path, kind, dialect, problems)
                if template is not None:
                    self._overrides[(dialect.key, kind, name)] = template
        if problems:
            # Markdown templates are compiled for both flavours: report each problem once.
            raise ConfigError(sorted(set(problems)))

    def __repr__(self) -> str:
        return f"TemplateSet(folder={self.folder!s}, names={sorted(self.names)})"

    def render(
        self,
        kind: Kind,
        dialect: _Dialect,
        names: Sequence[str | None],
        context: Mapping[str, Any],
        extra: Mapping[str, Any],
    ) -> str:
        """The body from the first of ``names`` with a template for ``kind`` and the dialect's
        format, else the folder's ``<kind>.<format>.j2``, else the default. When an override
        raises, a WARNING names it and the default writes the body instead."""
        default = self._defaults[(dialect.key, kind)]
        chosen = default
        for name in (*(name for name in names if name), None):
            found = self._overrides.get((dialect.key, kind, name))
            if found is not None:
                chosen = found
                break
        if chosen is not default:
            try:
                return chosen.render(context).strip()
            except Exception as exc:  # noqa: BLE001 (any error in a custom template falls back)
                file, line = _where(exc, chosen)
                log.warning(
                    "template %s:%d failed (%s: %s); the %s went out with the default template",
                    file,
                    line,
                    type(exc).__name__,
                    exc,
                    kind,
                    extra={"stage": "render", **extra},
                )
        return default.render(context).strip()


def _compile(
    env: SandboxedEnvironment, path: Path, kind: str, dialect: _Dialect, problems: list[Problem]
) -> jinja2.Template | None:
    """``path`` compiled and tried on sample alerts; None (and a problem) when it fails."""
    try:
        template = env.get_template(path.name)
    except jinja2.TemplateSyntaxError as exc:
        where = _display(exc.filename or path)
        problems.append(Problem(where, exc.lineno, f"template syntax error: {exc.message}"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(_display(path), 0, f"cannot read template: {exc}"))
        return None
    for context in _trial_contexts(kind, dialect):
        try:
            template.render(context)
        except Exception as exc:  # noqa: BLE001 (whatever a template raises is its problem)
            file, line = _where(exc, template)
            problems.append(Problem(file, line, f"template error: {type(exc).__name__}: {exc}"))
            return None
    return template


@functools.cache
def default_templates() -> TemplateSet:
    """The shipped templates alone, compiled once."""
    return TemplateSet(None)


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """Which templates one channel writes with: ``templates``, the channel's own ``template:``
    name (``channel``) and each rule's (``rules``: rule id -> name), the rule's first."""

    templates: TemplateSet
    channel: str | None = None
    rules: Mapping[str, str] = field(default_factory=dict)

    def for_alert(self, alert: Alert) -> tuple[str | None, ...]:
        return (self.rules.get(alert.rule_id), self.channel)

    def for_digest(self, digest: Digest) -> tuple[str | None, ...]:
        """A rule's template is used for a digest when every alert in it names that template."""
        named = {self.rules.get(alert.rule_id) for alert in digest.alerts}
        return (named.pop() if len(named) == 1 else None, self.channel)


# --------------------------------------------------------------------------------------------
# Rendering


def render(
    alert: Alert,
    fmt: Format,
    *,
    markdown_flavour: str = "standard",
    title_in_body: bool = False,
    width: int = 240,
    templates: TemplateChoice | None = None,
) -> Message:
    """The message for ``alert`` in ``fmt`` (see the module docstring for each format's rules).

    ``markdown_flavour`` matters for Markdown only: ``"standard"`` or ``"slack"``.
    ``title_in_body`` writes the title line at the top of the body (in the body's format) and
    leaves :attr:`Message.title` empty, for services without a title field. ``templates`` picks
    the body's template (default: the shipped one); one that fails falls back to the default,
    with a WARNING. Raises ValueError for an unknown flavour.
    """
    fmt = Format(fmt)
    dialect = _dialect(fmt, markdown_flavour)
    choice = templates if templates is not None else TemplateChoice(default_templates())
    title = title_line(alert)
    context = {
        "alert": _alert_view(alert, dialect, width),
        "title": title,
        "title_in_body": title_in_body,
    }
    body = choice.templates.render(
        "alert", dialect, choice.for_alert(alert), context, {"rule_id": alert.rule_id}
    )
    return Message(title="" if title_in_body else title, body=body, format=fmt)


def render_digest(
    digest: Digest,
    fmt: Format,
    *,
    markdown_flavour: str = "standard",
    title_in_body: bool = False,
    width: int = 160,
    templates: TemplateChoice | None = None,
) -> Message:
    """One message listing every alert of ``digest``: for each, its title line, link, source
    and a short excerpt, escaped as :func:`render` escapes a single alert."""
    fmt = Format(fmt)
    dialect = _dialect(fmt, markdown_flavour)
    choice = templates if templates is not None else TemplateChoice(default_templates())
    title = digest_title(digest)
    context = {
        "digest": _digest_view(digest, dialect, width),
        "title": title,
        "title_in_body": title_in_body,
    }
    body = choice.templates.render(
        "digest", dialect, choice.for_digest(digest), context, {"channel": digest.channel}
    )
    return Message(title="" if title_in_body else title, body=body, format=fmt)
