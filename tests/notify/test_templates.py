"""Message templates: the shipped defaults, escaping in the template layer, overrides from the
config's templates folder (global, per channel, per rule), and errors at load or at render."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

import markdown
import pytest
from apprise.plugins.slack import NotifySlack

from monitor import settings
from monitor.app import App
from monitor.cli import main
from monitor.errors import ConfigError
from monitor.matching.loader import load_rules
from monitor.models import Alert, Digest, Hit, Outlet, Severity
from monitor.notify.channels import Channel
from monitor.notify.render import (
    Format,
    TemplateChoice,
    TemplateSet,
    override_names,
    render,
    render_digest,
)

AlertFactory = Callable[..., Alert]

DIALECTS = [
    pytest.param(Format.TEXT, "standard", id="text"),
    pytest.param(Format.MARKDOWN, "standard", id="markdown"),
    pytest.param(Format.MARKDOWN, "slack", id="slack"),
    pytest.param(Format.HTML, "standard", id="html"),
]
EMPHASIS = {
    (Format.TEXT, "standard"): "*shoot*",
    (Format.MARKDOWN, "standard"): "**shoot**",
    (Format.MARKDOWN, "slack"): "**shoot**",
    (Format.HTML, "standard"): "<b>shoot</b>",
}
OUTLET = Outlet(
    source_id="ap-world",
    title="Tokayev authorises troops to fire",
    link="https://apnews.com/article/kazakhstan-tokayev",
    published=datetime(2022, 1, 7, 11, 0, tzinfo=UTC),
)
PAYLOAD = "<script>x()</script> <!channel> @here *bold* [click](https://evil.example/)"
"""Markup an article may carry: a script, a Slack broadcast and mention, emphasis, a link."""
SHOWN = PAYLOAD.replace("@here", "@\u2060here")
"""The payload as every format shows it: all of it, but the mention defused by a word joiner."""


def _with_outlet(make_alert: AlertFactory, **changes: object) -> Alert:
    return make_alert(outlets=(OUTLET,), **changes)


# --------------------------------------------------------------------------------------------
# The defaults


@pytest.mark.parametrize(("fmt", "flavour"), DIALECTS)
def test_default_alert_template_shows_every_fact(
    make_alert: AlertFactory, fmt: Format, flavour: str
) -> None:
    """Severity, rule name and id, title, link, source, UTC time, terms, the emphasised hit and
    the other outlets (source, title, link) are all in the default alert body."""
    body = render(_with_outlet(make_alert), fmt, markdown_flavour=flavour).body
    for fact in (
        "CRITICAL",
        "Orders to use lethal force against protesters",
        "(lethal-force)",
        "Kazakhstan orders to shoot protesters without warning",
        "https://www.reuters.com/world/asia-pacific/kazakhstan-2022-01-07/",
        "reuters-world",
        "2022-01-07T10:15:00Z",
        "shoot, without warning",
        EMPHASIS[(fmt, flavour)],
        "Also reported by",
        "ap-world",
        "Tokayev authorises troops to fire",
        "https://apnews.com/article/kazakhstan-tokayev",
    ):
        assert fact in body, fact


@pytest.mark.parametrize(("fmt", "flavour"), DIALECTS)
def test_default_alert_template_leaves_out_empty_sections(
    make_alert: AlertFactory, fmt: Format, flavour: str
) -> None:
    """No other outlets, no hits and no link: no "Also reported by", "Matched" or "Link" line."""
    alert = make_alert(hits=(), link=None, location=None)
    body = render(alert, fmt, markdown_flavour=flavour).body
    for absent in ("Also reported by", "Matched", "Link", "Location"):
        assert absent not in body


@pytest.mark.parametrize(("fmt", "flavour"), DIALECTS)
def test_default_digest_template_lists_each_alert_and_its_outlets(
    make_alert: AlertFactory, fmt: Format, flavour: str
) -> None:
    """Each alert of a digest shows its title line, source, time, link, emphasised excerpt and
    the sources of its other outlets."""
    alerts = (
        _with_outlet(make_alert),
        make_alert(match_id=8, title="Second story", link=None, location="/seeds/kz2.txt"),
    )
    body = render_digest(Digest("ops", "throttle", alerts), fmt, markdown_flavour=flavour).body
    for fact in (
        "Second story",
        "/seeds/kz2.txt",
        "https://www.reuters.com/world/asia-pacific/kazakhstan-2022-01-07/",
        "2022-01-07T10:15:00Z",
        EMPHASIS[(fmt, flavour)],
        "Also reported by: ap-world",
    ):
        assert fact in body, fact
    assert body.count("reuters-world") == 2


# --------------------------------------------------------------------------------------------
# Escaping


class _Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


HOSTILE_LINK = f"https://evil.example/story?q={PAYLOAD}"
"""An outlet's own link may hold anything too: it is shown as a link, encoded, never as markup."""


def _check_links(hrefs: list[str | None], forbidden: str) -> None:
    # Links come only from link fields: the outlets' (the alert's own is None), never from text.
    assert all(href is not None and not set(forbidden) & set(href) for href in hrefs), hrefs
    assert all(
        str(href).startswith(("https://apnews.com/", "https://evil.example/story?q="))
        for href in hrefs
    )


def _check_html(body: str) -> None:
    parsed = _Tags(body)
    assert {tag for tag, _ in parsed.tags} <= {"p", "b", "br", "blockquote", "a"}
    assert all(set(attrs) <= {"href"} for _, attrs in parsed.tags)
    _check_links([attrs.get("href") for tag, attrs in parsed.tags if tag == "a"], '<>" ')
    assert SHOWN in parsed.text


def _check_markdown(body: str) -> None:
    # Python-Markdown is what Apprise converts Markdown with for services that take HTML.
    parsed = _Tags(markdown.markdown(body))
    assert {tag for tag, _ in parsed.tags} <= {"p", "strong", "br", "blockquote", "a", "ul", "li"}
    _check_links([attrs.get("href") for tag, attrs in parsed.tags if tag == "a"], '<>" ()[]*')
    assert "*bold*" in parsed.text
    assert "<script>" in parsed.text


def _check_slack(body: str) -> None:
    # What Slack receives after Apprise's own CommonMark-to-mrkdwn translation; links (Slack's
    # <url> or <url|label>) must be only those of the link fields, the rest must be inert text.
    mrkdwn = NotifySlack._commonmark_to_slack(body)
    links = re.findall(r"<([^>]*)>", mrkdwn)
    _check_links(links, '<>" |')
    text = re.sub(r"<[^>]*>", "", mrkdwn)
    assert "@here" not in text
    assert "*bold*" not in text
    assert "evil.example" not in text.replace("(https://evil.example/)", "")
    assert "&lt;!channel&gt;" in text


def _check_text(body: str) -> None:
    assert SHOWN in body
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", body)


CHECKS = {
    (Format.TEXT, "standard"): _check_text,
    (Format.MARKDOWN, "standard"): _check_markdown,
    (Format.MARKDOWN, "slack"): _check_slack,
    (Format.HTML, "standard"): _check_html,
}


def _hostile(make_alert: AlertFactory, hit: Callable[..., Hit]) -> Alert:
    text = f"{PAYLOAD} Security forces will shoot {PAYLOAD} without warning."
    return make_alert(
        title=f"{PAYLOAD}\x1b[2J",
        rule_name=f"Rule {PAYLOAD}",
        source_id=f"src{PAYLOAD}",
        link=None,
        location=f"/seeds/{PAYLOAD}.txt",
        hits=(hit(text, "shoot"), hit(text, "[click]")),
        fields={"body": text},
        outlets=(
            replace(OUTLET, source_id=f"out{PAYLOAD}", title=PAYLOAD),
            replace(OUTLET, title=PAYLOAD, link=HOSTILE_LINK),
        ),
    )


@pytest.mark.parametrize("kind", ["alert", "digest"])
@pytest.mark.parametrize(("fmt", "flavour"), DIALECTS)
def test_default_templates_escape_untrusted_text(
    make_alert: AlertFactory, hit: Callable[..., Hit], fmt: Format, flavour: str, kind: str
) -> None:
    """A script, <!channel>, @here, *bold* and a Markdown link in article text are shown as text
    in every default template, never obeyed (titles, sources, excerpts and outlets alike)."""
    alert = _hostile(make_alert, hit)
    if kind == "alert":
        message = render(alert, fmt, markdown_flavour=flavour, title_in_body=True)
    else:
        digest = Digest("ops", "burst", (alert, alert))
        message = render_digest(digest, fmt, markdown_flavour=flavour, title_in_body=True)
    CHECKS[(fmt, flavour)](message.body)


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def _render_with(
    tmp_path: Path,
    alert: Alert,
    fmt: Format,
    source: str,
    flavour: str = "standard",
) -> str:
    folder = _folder(tmp_path, {f"alert.{fmt.value}.j2": source})
    choice = TemplateChoice(TemplateSet(folder))
    return render(alert, fmt, markdown_flavour=flavour, templates=choice).body


class Escaped(NamedTuple):
    fmt: Format
    flavour: str
    source: str
    title: str
    expected: str


TITLE = "{{ alert.title }}"
ESCAPED = [
    Escaped(Format.MARKDOWN, "standard", TITLE, "*b* [x](https://e/)", r"\*b\* \[x\](https://e/)"),
    Escaped(Format.MARKDOWN, "standard", "{{ alert.title | e }}", "*b* <i>", r"\*b\* \<i\>"),
    Escaped(Format.MARKDOWN, "standard", "{{ alert.title | upper }}", "_a_ # b", r"\_A\_ # B"),
    Escaped(Format.MARKDOWN, "standard", TITLE, "# Heading", r"\# Heading"),
    Escaped(Format.MARKDOWN, "standard", TITLE, "1. item", r"1\. item"),
    Escaped(
        Format.MARKDOWN,
        "slack",
        TITLE,
        "<!channel> @here *b*",
        "\\<!channel\\> @\u2060here \u2217b\u2217",
    ),
    Escaped(Format.HTML, "standard", TITLE, "<script>", "&lt;script&gt;"),
    Escaped(
        Format.HTML,
        "standard",
        '<a href="{{ alert.link }}">l</a>',
        "t",
        '<a href="https://x.example/?a=1&amp;b=%22">l</a>',
    ),
    Escaped(Format.TEXT, "standard", TITLE + "|", "two\nlines\x1b[1m", "two lines[1m|"),
]


@pytest.mark.parametrize("case", ESCAPED)
def test_custom_templates_get_article_text_escaped_without_asking(
    tmp_path: Path, make_alert: AlertFactory, case: Escaped
) -> None:
    """A custom template that prints article text plainly still gets it escaped for its format
    (and Jinja's ``e`` filter uses that format's escaping, not HTML's, outside HTML)."""
    alert = make_alert(title=case.title, link='https://x.example/?a=1&b="')
    body = _render_with(tmp_path, alert, case.fmt, case.source, case.flavour)
    assert body == case.expected


def test_markdown_links_cannot_break_out_of_a_link_destination(
    tmp_path: Path, make_alert: AlertFactory
) -> None:
    """A link with ")" and "[" cannot end a Markdown link destination or start another link."""
    alert = make_alert(link="https://x.example/a)[evil](https://evil.example/)*b*")
    body = _render_with(tmp_path, alert, Format.MARKDOWN, "[story]({{ alert.link }})")
    assert body == "[story](https://x.example/a%29%5Bevil%5D%28https://evil.example/%29%2Ab%2A)"
    parsed = _Tags(markdown.markdown(body))
    assert [attrs["href"] for _, attrs in parsed.tags if "href" in attrs] == [
        "https://x.example/a%29%5Bevil%5D%28https://evil.example/%29%2Ab%2A"
    ]


def test_safe_is_the_one_explicit_way_around_escaping(
    tmp_path: Path, make_alert: AlertFactory
) -> None:
    """Only ``| safe`` prints a value as it is: escaping is never skipped by omission."""
    alert = make_alert(title="*b*")
    body = _render_with(
        tmp_path, alert, Format.MARKDOWN, "{{ alert.title }} {{ alert.title | safe }}"
    )
    assert body == r"\*b\* *b*"


# --------------------------------------------------------------------------------------------
# Overrides

OVERRIDES = {
    "alert.text.j2": "GLOBAL {{ alert.rule_id }}",
    "brief.alert.text.j2": "BRIEF {{ alert.rule_id }}",
    "terse.alert.text.j2": "TERSE {{ alert.rule_id }}",
    "terse.digest.text.j2": "TERSE DIGEST {{ digest.count }}",
    "htmlonly.alert.html.j2": "HTMLONLY",
    "partials/unused.j2": "a partial, not a template of its own",
}


class Pick(NamedTuple):
    fmt: Format
    channel: str | None
    rule: str | None
    expected: str


PICKS = [
    Pick(Format.TEXT, None, None, "GLOBAL lethal-force"),
    Pick(Format.TEXT, "brief", None, "BRIEF lethal-force"),
    Pick(Format.TEXT, "brief", "terse", "TERSE lethal-force"),
    Pick(Format.TEXT, None, "terse", "TERSE lethal-force"),
    Pick(Format.TEXT, "brief", "htmlonly", "BRIEF lethal-force"),
    Pick(Format.TEXT, "htmlonly", None, "GLOBAL lethal-force"),
    Pick(Format.HTML, "htmlonly", None, "HTMLONLY"),
    Pick(Format.HTML, "brief", None, "<p><b>Severity:</b> CRITICAL<br>"),
]


@pytest.mark.parametrize("case", PICKS)
def test_the_rules_template_wins_over_the_channels_then_the_folders_then_the_default(
    tmp_path: Path, make_alert: AlertFactory, case: Pick
) -> None:
    """Templates are picked rule's NAME, then channel's NAME, then the folder's alert.<format>.j2,
    then the default; a NAME without a file for the channel's format is skipped."""
    templates = TemplateSet(_folder(tmp_path, OVERRIDES))
    assert templates.names == {"brief", "terse", "htmlonly"}
    rules = {"lethal-force": case.rule} if case.rule else {}
    choice = TemplateChoice(templates, case.channel, rules)
    assert render(make_alert(), case.fmt, templates=choice).body.startswith(case.expected)


def test_a_digest_takes_a_rules_template_only_when_all_its_alerts_name_it(
    tmp_path: Path, make_alert: AlertFactory
) -> None:
    """A digest of one rule's alerts uses that rule's template; one mixing rules uses the
    channel's choice."""
    choice = TemplateChoice(TemplateSet(_folder(tmp_path, OVERRIDES)), None, {"a": "terse"})
    same = Digest("ops", "throttle", (make_alert(rule_id="a"), make_alert(rule_id="a")))
    mixed = Digest("ops", "burst", (make_alert(rule_id="a"), make_alert(rule_id="b")))
    assert render_digest(same, Format.TEXT, templates=choice).body == "TERSE DIGEST 2"
    assert render_digest(mixed, Format.TEXT, templates=choice).body.startswith("[CRITICAL] ")


def test_overrides_may_extend_the_defaults(tmp_path: Path, make_alert: AlertFactory) -> None:
    """An override can include a default template (``default/<kind>.<format>.j2``) and add to it."""
    folder = _folder(
        tmp_path, {"alert.text.j2": 'DESK COPY\n{% include "default/alert.text.j2" %}'}
    )
    body = render(make_alert(), Format.TEXT, templates=TemplateChoice(TemplateSet(folder))).body
    assert body.startswith("DESK COPY\nSeverity: CRITICAL\n")


def test_templates_are_compiled_once_when_loaded(tmp_path: Path, make_alert: AlertFactory) -> None:
    """Editing a template file after loading changes nothing: it was compiled at load, not per
    alert."""
    folder = _folder(tmp_path, {"alert.text.j2": "FIRST"})
    choice = TemplateChoice(TemplateSet(folder))
    (folder / "alert.text.j2").write_text("SECOND", encoding="utf-8")
    assert render(make_alert(), Format.TEXT, templates=choice).body == "FIRST"


def test_a_missing_folder_means_the_defaults(tmp_path: Path, make_alert: AlertFactory) -> None:
    """No templates folder is not an error: every message uses the shipped templates."""
    templates = TemplateSet(tmp_path / "absent")
    assert templates.names == frozenset()
    assert override_names(tmp_path / "absent") == frozenset()
    body = render(make_alert(), Format.TEXT, templates=TemplateChoice(templates)).body
    assert body == render(make_alert(), Format.TEXT).body


# --------------------------------------------------------------------------------------------
# Errors


class Broken(NamedTuple):
    name: str
    source: str
    line: int
    message: str


BROKEN = [
    Broken("alert.text.j2", "Severity\n{% if %}\n", 2, "template syntax error: Expected an"),
    Broken("alert.html.j2", "{% for x in alert.terms %}\n{{ x }}\n", 2, "Unexpected end of"),
    Broken("x.alert.markdown.j2", "a\nb\n{{ alert.titel }}\n", 3, "no attribute 'titel'"),
    Broken("digest.text.j2", "{{ digest.count | nope }}", 1, "No filter named 'nope'"),
    Broken("alert.text.j2", "\n{{ alert.__class__.__mro__ }}", 2, "template error: SecurityError"),
    Broken("alert.text.j2", "{{ alert.outlets[0].title }}", 1, "template error: UndefinedError"),
    Broken("alert.txt.j2", "x", 0, "not a template name"),
]


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_template_is_a_config_error_with_file_and_line(
    tmp_path: Path, case: Broken
) -> None:
    """Syntax errors, misspelt variables, unknown filters, reaching into Python internals, a
    branch failing on an alert without outlets, and a misnamed file are reported at load with the
    file and line."""
    folder = _folder(tmp_path, {case.name: case.source})
    with pytest.raises(ConfigError) as caught:
        TemplateSet(folder)
    (problem,) = caught.value.problems
    assert (Path(problem.file), problem.line) == (folder / case.name, case.line)
    assert case.message in problem.message


def test_a_template_failing_at_render_falls_back_to_the_default(
    tmp_path: Path, make_alert: AlertFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A template that raises for one alert is logged at WARNING, naming it and its line, and the
    alert still goes out, written by the default template."""
    source = 'ok\n{% if alert.source == "boom" %}{{ alert.nope }}{% endif %}\n'
    folder = _folder(tmp_path, {"brief.alert.text.j2": source})
    choice = TemplateChoice(TemplateSet(folder), "brief")
    assert render(make_alert(), Format.TEXT, templates=choice).body == "ok"
    boom = make_alert(source_id="boom")
    with caplog.at_level(logging.WARNING, logger="monitor.notify.render"):
        message = render(boom, Format.TEXT, templates=choice)
    assert message == render(boom, Format.TEXT)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"{folder / 'brief.alert.text.j2'}:2 failed" in record.getMessage()
    assert getattr(record, "rule_id", None) == "lethal-force"


# --------------------------------------------------------------------------------------------
# Configuration


def _project(tmp_path: Path, *, channel: str, rule: str, templates: dict[str, str]) -> Path:
    config = tmp_path / "config" / "monitor.yaml"
    config.parent.mkdir()
    config.write_text(
        f"rules: ../rules\nchannels:\n  - id: desk\n    url: console://\n{channel}notify: [desk]\n",
        encoding="utf-8",
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        f"rules:\n  - id: r1\n    name: R1\n    keywords: [shoot]\n{rule}", encoding="utf-8"
    )
    _folder(tmp_path / "config", templates)
    return config


def test_templates_folder_defaults_to_templates_beside_the_config(tmp_path: Path) -> None:
    """``templates`` is resolved against the config file's folder, like the other paths."""
    config = _project(tmp_path, channel="", rule="", templates={})
    assert settings.load(config, {}).templates == tmp_path / "config" / "templates"


def test_channel_and_rule_templates_reach_the_channel(
    tmp_path: Path, make_alert: AlertFactory
) -> None:
    """A channel's ``template:`` and each rule's are wired into the channel that renders them."""
    config = _project(
        tmp_path,
        channel="    template: brief\n",
        rule="    template: terse\n",
        templates={"brief.alert.text.j2": "BRIEF", "terse.alert.text.j2": "TERSE"},
    )
    app = App.load(config)
    choice = app.channels["desk"].templates
    assert choice is not None
    assert (choice.channel, dict(choice.rules)) == ("brief", {"r1": "terse"})
    assert render(make_alert(rule_id="r1"), Format.TEXT, templates=choice).body == "TERSE"
    assert render(make_alert(rule_id="r2"), Format.TEXT, templates=choice).body == "BRIEF"


def test_monitor_check_reports_unknown_names_and_broken_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor check` names the config line of an unknown channel template; once the config is
    valid, the rule file line of an unknown rule template and the file and line of a template
    that does not compile."""
    templates = {"brief.alert.text.j2": "ok", "alert.html.j2": "<p>\n{{ alert.title }\n"}
    config = _project(
        tmp_path,
        channel="    template: breif\n",
        rule="    template: nothing\n",
        templates=templates,
    )
    assert main(["--config", str(config), "check"]) == 2
    errors = capsys.readouterr().err
    assert (
        "monitor.yaml:5: unknown template 'breif' (did you mean 'brief'?): the templates" in errors
    )
    config.write_text(config.read_text().replace("breif", "brief"), encoding="utf-8")
    assert main(["--config", str(config), "check"]) == 2
    errors = capsys.readouterr().err
    assert "r.yaml:5: unknown template 'nothing'; the templates folder has no" in errors
    assert "alert.html.j2:2: template syntax error: unexpected '}'" in errors


def test_rule_loader_checks_template_names(tmp_path: Path) -> None:
    """A rule's ``template`` must be one of the names given; a near miss is suggested."""
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: r1\n    name: R1\n    keywords: [x]\n    template: bref\n",
        encoding="utf-8",
    )
    assert load_rules(tmp_path).rules[0].template == "bref"
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, templates={"brief"})
    (problem,) = caught.value.problems
    assert (problem.line, problem.message.split(";")[0]) == (
        5,
        "unknown template 'bref' (did you mean 'brief'?)",
    )


def test_digest_templates_see_the_digests_facts(tmp_path: Path, make_alert: AlertFactory) -> None:
    """A digest template gets the top severity, the count, the reason and the window in UTC."""
    folder = _folder(
        tmp_path,
        {
            "digest.text.j2": "{{ digest.severity }} {{ digest.count }} {{ digest.reason }} "
            "{{ digest.since }} {{ digest.until }} {{ digest.channel }}"
        },
    )
    digest = Digest(
        "ops",
        "throttle",
        (make_alert(severity=Severity.LOW), make_alert(severity=Severity.HIGH)),
        since=datetime(2022, 1, 7, 10, 0, tzinfo=UTC),
        until=datetime(2022, 1, 7, 10, 30, tzinfo=UTC),
    )
    body = render_digest(digest, Format.TEXT, templates=TemplateChoice(TemplateSet(folder))).body
    assert body == "high 2 throttle 2022-01-07T10:00:00Z 2022-01-07T10:30:00Z ops"


async def test_a_channels_template_reaches_telegram_as_escaped_html(
    tmp_path: Path, make_alert: AlertFactory, telegram_server: Any
) -> None:
    """A Telegram channel with ``template: phone`` sends that template's HTML, article text
    autoescaped and the title in the body (Telegram has no title field), with parse_mode HTML."""
    folder = _folder(
        tmp_path,
        {
            "phone.alert.html.j2": (
                "{% if title_in_body %}<b>{{ title }}</b>\n{% endif %}"
                "<b>{{ alert.severity | upper }}</b> {{ alert.title }}\n"
                '<a href="{{ alert.link }}">{{ alert.source }}</a>'
            )
        },
    )
    channel = Channel.from_url("phone", "tgram://123456789:abcdefghijklmnopqrstuvwxyzABCDEFGHI/42")
    channel.templates = TemplateChoice(TemplateSet(folder), "phone")
    await channel.send(make_alert(title="<!channel> <script>x</script>"))
    [(_path, payload)] = telegram_server.requests
    assert payload["parse_mode"] == "HTML"
    assert payload["text"] == (
        "<b>[CRITICAL] Orders to use lethal force against protesters: &lt;!channel&gt; "
        "&lt;script&gt;x&lt;/script&gt;</b>\r\n<b>CRITICAL</b> &lt;!channel&gt; "
        "&lt;script&gt;x&lt;/script&gt;\r\n"
        '<a href="https://www.reuters.com/world/asia-pacific/kazakhstan-2022-01-07/">'
        "reuters-world</a>"
    )
