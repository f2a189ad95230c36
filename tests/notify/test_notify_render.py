"""Rendering alerts: the snippet window, each format's layout, and escaping of untrusted text."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import TelegramHTMLReducer
from hypothesis import given
from hypothesis import strategies as st

from monitor.models import Alert, Digest, Hit, Severity
from monitor.notify.render import Format, Message, render, render_digest, snippet, title_line

AlertFactory = Callable[..., Alert]
HitFactory = Callable[..., Hit]

PAYLOADS = (
    "<script>alert(1)</script>",
    "<!channel>",
    "<!here|here>",
    "<@U123ABC>",
    '"><img src=x onerror=alert(1)>',
    "*bold* _italic_ ~strike~ `code`",
    "[click](javascript:alert(1))",
    "<https://evil.example|totally safe>",
)


# --------------------------------------------------------------------------------------------
# snippet


def test_snippet_marks_each_hit_and_keeps_the_text_between(hit: HitFactory) -> None:
    """Segments alternate between plain text and hits, in the order of the text."""
    text = "Police were ordered to shoot protesters without warning on Friday."
    hits = [hit(text, "shoot"), hit(text, "without warning")]
    assert snippet(text, hits) == [
        ("Police were ordered to ", False),
        ("shoot", True),
        (" protesters ", False),
        ("without warning", True),
        (" on Friday.", False),
    ]


def test_snippet_cuts_at_word_boundaries_with_ellipses(hit: HitFactory) -> None:
    """A long text is cut to about ``width`` characters, at whole words, with "…" where cut."""
    text = (
        " ".join(f"word{i}" for i in range(100))
        + " target "
        + " ".join("x" * 5 for _ in range(100))
    )
    segments = snippet(text, [hit(text, "target")], width=60)
    joined = "".join(part for part, _ in segments)
    assert joined.startswith("…word")
    assert joined.endswith("…")
    assert ("target", True) in segments
    assert len(joined) <= 62
    inner = joined.strip("…").strip()
    assert all(re.fullmatch(r"word\d+|target|x{5}", word) for word in inner.split())


def test_snippet_merges_overlapping_hits(hit: HitFactory) -> None:
    """Overlapping hits ("lethal force", "force against") become one emphasised segment."""
    text = "They used lethal force against the crowd."
    segments = snippet(text, [hit(text, "lethal force"), hit(text, "force against")])
    assert [part for part, is_hit in segments if is_hit] == ["lethal force against"]


def test_snippet_finds_hits_whose_offsets_are_wrong() -> None:
    """A hit whose offsets do not match its text is located by its text, or dropped if absent."""
    text = "Troops fired on Protesters."
    moved = Hit(term="fired", field="body", start=0, end=5, text="fired")
    recased = Hit(term="protesters", field="body", start=99, end=109, text="protesters")
    missing = Hit(term="tanks", field="body", start=3, end=8, text="tanks")
    assert snippet(text, [moved, recased, missing]) == [
        ("Troops ", False),
        ("fired", True),
        (" on ", False),
        ("Protesters", True),
        (".", False),
    ]


def test_snippet_has_no_ellipsis_for_cut_whitespace(hit: HitFactory) -> None:
    """Only text left out is marked with "…"; trailing or leading blanks are not."""
    text = "   troops shoot" + " " * 500
    assert snippet(text, [hit(text, "shoot")], width=20) == [("troops ", False), ("shoot", True)]


def test_snippet_without_hits_is_the_start_of_the_text() -> None:
    """No usable hit: the beginning of the text, cut at a word; empty text: no segments."""
    text = "alpha beta gamma delta epsilon zeta eta theta"
    assert snippet(text, [], width=20) == [("alpha beta gamma…", False)]
    assert snippet("   ", []) == []


def test_snippet_collapses_whitespace_and_drops_control_characters(hit: HitFactory) -> None:
    """Newlines, tabs and terminal escapes in the article never reach the segments."""
    text = "line one\n\n\tshoot\x1b[31m now\r\n"
    segments = snippet(text, [hit(text, "shoot")])
    assert segments == [("line one ", False), ("shoot", True), ("[31m now", False)]


@given(
    words=st.lists(st.from_regex(r"[a-z]{1,12}", fullmatch=True), min_size=1, max_size=120),
    index=st.integers(min_value=0),
    width=st.integers(min_value=20, max_value=300),
)
def test_snippet_always_shows_the_first_hit(words: list[str], index: int, width: int) -> None:
    """Whatever the text and width, the first hit is in the snippet, whole and emphasised."""
    position = index % len(words)
    text = " ".join(words)
    start = sum(len(word) + 1 for word in words[:position])
    target = Hit(
        term="t", field="body", start=start, end=start + len(words[position]), text=words[position]
    )
    segments = snippet(text, [target], width=width)
    assert (words[position], True) in segments
    joined = "".join(part for part, _ in segments)
    # Every word shown is a whole word of the text (no word cut in two).
    assert set(joined.strip("…").split()) <= set(words)


# --------------------------------------------------------------------------------------------
# layout


def test_title_line_has_severity_rule_and_article_title(make_alert: AlertFactory) -> None:
    """The title reads "[CRITICAL] <rule name>: <article title>"."""
    assert title_line(make_alert()) == (
        "[CRITICAL] Orders to use lethal force against protesters: "
        "Kazakhstan orders to shoot protesters without warning"
    )


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_shows_the_facts_of_the_alert(make_alert: AlertFactory, fmt: Format) -> None:
    """Severity, rule name and id, title, link, source, UTC time, terms and the excerpt appear."""
    message = render(make_alert(), fmt)
    assert isinstance(message, Message)
    assert message.format is fmt
    assert message.title.startswith("[CRITICAL] Orders to use lethal force")
    for fact in (
        "CRITICAL",
        "Orders to use lethal force against protesters",
        "(lethal-force)",
        "Kazakhstan orders to shoot protesters without warning",
        "https://www.reuters.com/world/asia-pacific/kazakhstan-2022-01-07/",
        "reuters-world",
        "2022-01-07T10:15:00Z",
        "authorised security forces",
    ):
        assert fact in message.body, fact


@pytest.mark.parametrize(
    ("fmt", "flavour", "emphasis"),
    [
        (Format.TEXT, "standard", "*shoot*"),
        (Format.MARKDOWN, "standard", "**shoot**"),
        (Format.MARKDOWN, "slack", "**shoot**"),
        (Format.HTML, "standard", "<b>shoot</b>"),
    ],
)
def test_hits_are_emphasised_in_each_format(
    make_alert: AlertFactory, fmt: Format, flavour: str, emphasis: str
) -> None:
    """Each hit in the excerpt carries the format's emphasis."""
    body = render(make_alert(), fmt, markdown_flavour=flavour).body
    assert emphasis in body
    assert "without warning" in body


def test_matched_terms_are_listed_once_each(make_alert: AlertFactory, hit: HitFactory) -> None:
    """The "Matched" line names each term once, in the order of the hits."""
    text = "shoot, shoot again"
    alert = make_alert(
        hits=(hit(text, "shoot"), hit(text, "again"), hit(text, "shoot")), fields={"body": text}
    )
    assert "Matched: shoot, again\n" in render(alert, Format.TEXT).body


def test_excerpt_comes_from_the_first_keyword_hits_field(
    make_alert: AlertFactory, hit: HitFactory
) -> None:
    """An actor hit in the title does not pull the excerpt away from the summary's keyword hit."""
    title = "Tokayev speaks"
    summary = "The president ordered troops to open fire."
    alert = make_alert(
        title=title,
        hits=(hit(title, "Tokayev", "title", "actor"), hit(summary, "open fire", "summary")),
        fields={"title": title, "summary": summary},
    )
    body = render(alert, Format.TEXT).body
    assert body.endswith("The president ordered troops to *open fire*.")


def test_without_link_the_location_is_shown(make_alert: AlertFactory) -> None:
    """A file from a seed folder has no URL: the alert shows where the file is."""
    body = render(make_alert(link=None, location="/seeds/2022/kz.txt"), Format.TEXT).body
    assert "Location: /seeds/2022/kz.txt" in body
    assert "Link:" not in body


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "jav\tascript:alert(1)", "data:text/html,x", "//evil"]
)
def test_only_http_links_are_shown(make_alert: AlertFactory, link: str) -> None:
    """A link that is not http(s) is treated as no link at all, in every format."""
    for fmt in Format:
        body = render(make_alert(link=link, location=None), fmt).body
        assert "Link" not in body
        assert "alert(1)" not in body
        assert "evil" not in body


def test_publication_time_is_utc_or_unknown(make_alert: AlertFactory) -> None:
    """An aware time is shown in UTC with a Z; a missing one as "unknown"."""
    plus_six = timezone(timedelta(hours=6))
    body = render(
        make_alert(published=datetime(2022, 1, 7, 16, 15, tzinfo=plus_six)), Format.TEXT
    ).body
    assert "Published: 2022-01-07T10:15:00Z" in body
    assert "Published: unknown" in render(make_alert(published=None), Format.TEXT).body


def test_title_in_body_moves_the_title_into_the_body(make_alert: AlertFactory) -> None:
    """For services without a title field the title line opens the body, in the body's markup."""
    message = render(make_alert(title="A <b> title"), Format.HTML, title_in_body=True)
    assert message.title == ""
    assert message.body.startswith(
        "<p><b>[CRITICAL] Orders to use lethal force against protesters: A &lt;b&gt; title</b><br>"
    )


def test_unknown_markdown_flavour_is_an_error(make_alert: AlertFactory) -> None:
    """A typo in the flavour fails loudly instead of silently using another escaping."""
    with pytest.raises(ValueError, match="flavour"):
        render(make_alert(), Format.MARKDOWN, markdown_flavour="github")


# --------------------------------------------------------------------------------------------
# escaping untrusted text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text += data


def _hostile(make_alert: AlertFactory, hit: HitFactory, payload: str) -> Alert:
    body = f"{payload} Security forces will shoot {payload} without warning."
    return make_alert(
        title=f"{payload} Kazakhstan",
        source_id=f"src{payload}",
        link=None,
        location=f"/seeds/{payload}.txt",
        hits=(hit(body, "shoot"),),
        fields={"body": body},
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_contains_only_our_own_tags(
    make_alert: AlertFactory, hit: HitFactory, payload: str
) -> None:
    """Article text in HTML is escaped: only our p, b, br, blockquote tags, none with attributes."""
    body = render(_hostile(make_alert, hit, payload), Format.HTML).body
    parser = _Tags()
    parser.feed(body)
    assert {tag for tag, _ in parser.tags} <= {"p", "b", "br", "blockquote"}
    assert all(not attrs for _, attrs in parser.tags)
    assert payload in parser.text  # shown to the reader, as text
    assert html.escape(payload) in body


def test_html_link_is_an_escaped_http_anchor(make_alert: AlertFactory) -> None:
    """A link with quotes and angle brackets stays inside its href and cannot add attributes."""
    body = render(
        make_alert(link='https://example.org/a?q="><img src=x onerror=alert(1)>'), Format.HTML
    ).body
    parser = _Tags()
    parser.feed(body)
    anchors = [attrs for tag, attrs in parser.tags if tag == "a"]
    assert anchors == [
        [("href", "https://example.org/a?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E")]
    ]
    assert "img" not in {tag for tag, _ in parser.tags}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_slack_markdown_has_no_live_markup_from_the_article(
    make_alert: AlertFactory, hit: HitFactory, payload: str
) -> None:
    """After Apprise's own Slack translation, article text makes no mention, link or formatting."""
    alert = _hostile(make_alert, hit, payload)
    mrkdwn = NotifySlack._commonmark_to_slack(
        render(alert, Format.MARKDOWN, markdown_flavour="slack").body
    )
    # Our own markup: *Label:* bold labels and the *shoot* hit. Nothing else may be markup.
    ours = re.sub(
        r"\*(Severity|Rule|Article|Location|Source|Published|Matched):\*|\*shoot\*", "", mrkdwn
    )
    assert "<" not in ours
    assert ">" not in ours.replace("\n> ", "\n")
    assert not re.search(r"[*_~`]", ours)


def test_slack_broadcast_words_are_broken(make_alert: AlertFactory) -> None:
    """Broadcast words ("@channel", "@here", "@everyone") in article text are broken."""
    body = render(
        make_alert(title="@channel @here @everyone x"), Format.MARKDOWN, markdown_flavour="slack"
    ).body
    assert "@channel" not in body
    assert "@here" not in body
    assert "@everyone" not in body


@pytest.mark.parametrize("payload", PAYLOADS)
def test_standard_markdown_escapes_markup(
    make_alert: AlertFactory, hit: HitFactory, payload: str
) -> None:
    """In standard Markdown every markup character of article text is backslash-escaped."""
    body = render(_hostile(make_alert, hit, payload), Format.MARKDOWN).body
    unescaped = re.compile(r"(?<!\\)[<>*_`\[\]~]")
    article_line = next(line for line in body.splitlines() if line.startswith("**Article:**"))
    assert not unescaped.search(article_line.removeprefix("**Article:**").removesuffix("  "))


def test_standard_markdown_excerpt_cannot_start_a_heading(
    make_alert: AlertFactory, hit: HitFactory
) -> None:
    """An excerpt that starts with "#" or "1." is escaped so it stays a plain quoted line."""
    text = "# 1. Breaking: troops shoot"
    body = render(
        make_alert(hits=(hit(text, "shoot"),), fields={"body": text}), Format.MARKDOWN
    ).body
    assert "> \\# 1. Breaking: troops **shoot**" in body


@pytest.mark.parametrize("payload", PAYLOADS)
def test_telegram_html_keeps_the_payload_as_text(
    make_alert: AlertFactory, hit: HitFactory, payload: str
) -> None:
    """After Apprise's Telegram HTML reduction the payload is still escaped text, not tags."""
    alert = _hostile(make_alert, hit, payload)
    reduced = TelegramHTMLReducer().reduce(render(alert, Format.HTML, title_in_body=True).body)
    parser = _Tags()
    parser.feed(reduced)
    assert {tag for tag, _ in parser.tags} <= {"b", "blockquote"}
    assert payload in parser.text


def test_text_format_is_single_line_per_field(make_alert: AlertFactory) -> None:
    """A title with newlines and escape sequences cannot add lines or colours to a text alert."""
    message = render(make_alert(title="Fake\nSeverity: INFO\x1b[2J"), Format.TEXT)
    assert "\n" not in message.title
    assert "\x1b" not in message.title
    assert "Article: Fake Severity: INFO[2J\n" in message.body


def test_render_accepts_the_format_as_a_string(make_alert: AlertFactory) -> None:
    """Format values are Apprise's format names, so "html" works as well as Format.HTML."""
    fmt: Any = "html"
    assert render(make_alert(), fmt).format is Format.HTML


def test_severity_is_upper_case_in_title(make_alert: AlertFactory) -> None:
    """Every severity shows upper-case in brackets."""
    for severity in Severity:
        assert title_line(make_alert(severity=severity)).startswith(f"[{severity.value.upper()}] ")


@pytest.mark.parametrize("fmt", list(Format))
def test_a_digest_lists_every_alert_with_its_link_and_excerpt(
    make_alert: AlertFactory, fmt: Format
) -> None:
    """A digest's title gives the top severity, the count and the rules; its body each alert."""
    alerts = (
        make_alert(severity=Severity.MEDIUM, match_id=1),
        make_alert(match_id=2, title="Second story", link="https://example.org/2"),
    )
    message = render_digest(Digest("ops", "burst", alerts), fmt)
    assert message.title == "[CRITICAL] 2 alerts: Orders to use lethal force against protesters"
    assert message.body.count("Orders to use lethal force against protesters") == 2
    for fact in ("Second story", "https://example.org/2", "reuters-world", "shoot"):
        assert fact in message.body, fact


def test_a_digest_escapes_article_text_as_a_single_alert_does(make_alert: AlertFactory) -> None:
    """Markup in a title is shown, not obeyed, in every alert of a digest."""
    alert = make_alert(title="<!channel> <script>x</script>")
    body = render_digest(Digest("ops", "burst", (alert,)), Format.HTML).body
    assert "<script>" not in body
    assert "&lt;script&gt;" in body


@pytest.mark.parametrize("fmt", list(Format))
def test_mentions_are_defused_and_lone_surrogates_dropped_in_every_format(
    make_alert: AlertFactory, fmt: Format
) -> None:
    """@everyone, @here and Discord's numbered mentions (which Apprise turns into pings even
    bare) reach no service live, whatever the format; a lone surrogate, which no service can
    encode (an e-mail with one failed at every attempt), is dropped."""
    title = "Breaking @everyone <@123456789012345678> @here x\ud800y"
    message = render(make_alert(title=title, rule_name="Desk @channel"), fmt)
    for text in (message.title, message.body):
        for mention in ("@everyone", "@123456789012345678", "@here", "@channel"):
            assert mention not in text
        assert "\ud800" not in text
    assert "@\u2060everyone" in message.title
    assert "xy" in message.title
