"""E-mail messages: subject, sender, date and the text body."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.documents import eml
from monitor.documents.eml import MAX_DEPTH, parse_eml
from monitor.errors import DocumentError


def test_multipart_prefers_plain_text(fixture_bytes: Callable[[str], bytes]) -> None:
    """A text+HTML message gives the plain part, the decoded subject and the headers' metadata."""
    [article] = parse_eml(fixture_bytes("multipart.eml"))
    assert article.title == "Curfew extended in Almaty — update"
    assert article.body == (
        "The curfew in Almaty was extended until January 19.\n"
        "Checkpoints remain on all roads into the city."
    )
    assert article.author == "Almaty Desk <desk@news.example.kz>"
    assert article.published == datetime(2022, 1, 7, 12, 45, tzinfo=UTC)
    assert article.url == "https://news.example.kz/curfew-extended"
    assert article.guid == "<curfew-123@news.example.kz>"


def test_html_only_message(fixture_bytes: Callable[[str], bytes]) -> None:
    """An HTML-only message in latin-1 gives its readable text, without the style sheet."""
    [article] = parse_eml(fixture_bytes("html_only.eml"))
    assert article.title == "Weekly bulletin"
    assert article.body == (
        "Weekly bulletin\n\nCafé owners in Almaty report losses.\n\nBanks reopened on Monday."
    )
    assert article.author == "bulletin@example.org"
    assert article.published == datetime(2022, 1, 10, 14, tzinfo=UTC)
    assert article.url is None


@pytest.mark.parametrize(
    ("message", "title", "body"),
    [
        pytest.param(
            b"Subject: Unknown charset\nContent-Type: text/plain; charset=x-bogus\n\n"
            + "Алматы".encode("cp1251"),
            "Unknown charset",
            "Алматы",
            id="unknown-charset-is-guessed",
        ),
        pytest.param(b"Subject: Only a subject\n\n", "Only a subject", "", id="no-body"),
        pytest.param(b"From: a@b.c\n\nNo subject here", "", "No subject here", id="no-subject"),
        pytest.param(
            b"Subject: Attachment only\nContent-Type: multipart/mixed; boundary=b\n\n"
            b"--b\nContent-Type: application/pdf\n\n%PDF\n--b--\n",
            "Attachment only",
            "",
            id="attachment-is-not-body",
        ),
        pytest.param(
            b"Subject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\n\r\nCRLF\r\nbody\r\n",
            "Привет",
            "CRLF\nbody",
            id="encoded-subject-crlf",
        ),
    ],
)
def test_message_variants(message: bytes, title: str, body: str) -> None:
    """Missing parts are empty, unknown charsets are guessed, attachments are not the body."""
    [article] = parse_eml(message)
    assert (article.title, article.body) == (title, body)


def test_unparseable_headers_are_kept_raw() -> None:
    """Headers the stdlib parser fails on (it raises IndexError) are used as written."""
    [article] = parse_eml(b"Subject: s\nFrom: a@\nMessage-ID: <\n\nbody")
    assert (article.author, article.guid) == ("a@", "<")


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        pytest.param("Fri, 07 Jan 2022 10:00:00 +0600", datetime(2022, 1, 7, 4, tzinfo=UTC)),
        pytest.param("not a date", None, id="nonsense"),
        pytest.param("Fri, 07 Jan 99999 10:00:00 +0600", None, id="year-out-of-range"),
    ],
)
def test_date_header(date: str, expected: datetime | None) -> None:
    """The Date header converts to UTC, and an unusable one is left out."""
    [article] = parse_eml(f"Subject: s\nDate: {date}\n\nbody".encode())
    assert article.published == expected


@pytest.mark.parametrize("message", [b"", b"From: nobody@example.org\n\n   \n"])
def test_no_subject_and_no_body_is_an_error(message: bytes) -> None:
    """A message with neither a subject nor body text raises DocumentError."""
    with pytest.raises(DocumentError, match=r"^e-mail has neither a subject nor a text body$"):
        parse_eml(message)


def _nested_multiparts(levels: int) -> bytes:
    """A message whose text part sits inside ``levels`` nested multiparts."""
    boundaries = (
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level)
        for level in range(levels)
    )
    return b"Subject: nested\n" + b"".join(boundaries) + b"Content-Type: text/plain\n\nbody\n"


def _nested_messages(levels: int) -> bytes:
    """A message whose text sits inside ``levels`` nested message/rfc822 parts."""
    wrappers = b"Content-Type: message/rfc822\n\n" * levels
    return b"Subject: outer\n" + wrappers + b"Subject: inner\n\nbody\n"


def test_parts_nested_up_to_the_limit_are_read() -> None:
    """A text part MAX_DEPTH multiparts deep is still found and read."""
    [article] = parse_eml(_nested_multiparts(MAX_DEPTH))
    assert (article.title, article.body) == ("nested", "body")


@pytest.mark.parametrize("nested", [_nested_multiparts, _nested_messages])
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 100 * sys.getrecursionlimit()])
def test_parts_nested_past_the_limit_are_refused(
    nested: Callable[[int], bytes], levels: int
) -> None:
    """Parts nested past MAX_DEPTH, even far past the recursion limit, raise DocumentError."""
    with pytest.raises(DocumentError, match=r"^e-mail parts nested more than 100 levels deep$"):
        parse_eml(nested(levels))


def test_depth_of_the_parsed_message_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts nested too deep are refused even when the parser closed them all between checks."""
    monkeypatch.setattr(eml, "_CHUNK", 1 << 20)  # the whole message in one feed
    closings = b"".join(b"--b%d--\n" % level for level in reversed(range(MAX_DEPTH + 1)))
    with pytest.raises(DocumentError, match=r"^e-mail parts nested more than 100 levels deep$"):
        parse_eml(_nested_multiparts(MAX_DEPTH + 1) + closings)


def test_deeply_nested_header_comments_are_survived() -> None:
    """A From header of comments nested past the recursion limit is kept raw, not fatal."""
    levels = 10 * sys.getrecursionlimit()
    sender = b"(" * levels + b")" * levels + b" a@example.org"
    [article] = parse_eml(b"Subject: s\nFrom: " + sender + b"\n\nbody\n")
    assert article.author == sender.decode()
    assert article.body == "body"


def test_deeply_nested_content_type_comments_raise_document_error() -> None:
    """A Content-Type the parser itself cannot read for its nesting raises DocumentError."""
    levels = 10 * sys.getrecursionlimit()
    content_type = b"text/plain " + b"(" * levels + b")" * levels
    with pytest.raises(DocumentError, match=r"^document nested too deeply$"):
        parse_eml(b"Subject: s\nContent-Type: " + content_type + b"\n\nbody\n")
