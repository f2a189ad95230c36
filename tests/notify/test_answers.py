"""Classifying what a service answered: permanent or transient, and how long to wait."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.notify.answers import (
    MAX_RETRY_AFTER,
    HttpAnswer,
    SmtpAnswer,
    Verdict,
    classify,
    parse_retry_after,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
APPRISE = "Failed to send."


def telegram(status: int, description: str, retry_after: int | None = None) -> HttpAnswer:
    body: dict[str, object] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return HttpAnswer(status, body=json.dumps(body))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            telegram(400, "Bad Request: chat not found"),
            Verdict(f"Bad Request: chat not found (HTTP 400); {APPRISE}", permanent=True),
        ),
        (
            telegram(401, "Unauthorized"),
            Verdict(f"Unauthorized (HTTP 401); {APPRISE}", permanent=True),
        ),
        (
            telegram(403, "Forbidden: bot was blocked by the user"),
            Verdict(
                f"Forbidden: bot was blocked by the user (HTTP 403); {APPRISE}", permanent=True
            ),
        ),
        (
            HttpAnswer(404, body="no_service"),
            Verdict(f"no_service (HTTP 404); {APPRISE}", permanent=True),
        ),
        (
            HttpAnswer(410, body="channel_is_archived"),
            Verdict(f"channel_is_archived (HTTP 410); {APPRISE}", permanent=True),
        ),
        (
            HttpAnswer(429, retry_after="30", body="rate_limited"),
            Verdict(f"rate_limited (HTTP 429); {APPRISE}", retry_after=30.0),
        ),
        (
            telegram(429, "Too Many Requests: retry after 7", retry_after=7),
            Verdict(f"Too Many Requests: retry after 7 (HTTP 429); {APPRISE}", retry_after=7.0),
        ),
        (HttpAnswer(503, body=""), Verdict(f"HTTP 503; {APPRISE}")),
        (HttpAnswer(500, body="internal_error"), Verdict(f"internal_error (HTTP 500); {APPRISE}")),
        (HttpAnswer(408), Verdict(f"HTTP 408; {APPRISE}")),
        (
            HttpAnswer(None, error="ConnectTimeout"),
            Verdict(f"no answer (ConnectTimeout); {APPRISE}"),
        ),
        (
            SmtpAnswer(550, "5.1.1 no such user (desk@example.org)"),
            Verdict(f"SMTP 550 5.1.1 no such user (desk@example.org); {APPRISE}", permanent=True),
        ),
        (SmtpAnswer(451, "4.3.0 try later"), Verdict(f"SMTP 451 4.3.0 try later; {APPRISE}")),
    ],
)
def test_each_answer_is_classified(answer: HttpAnswer | SmtpAnswer, expected: Verdict) -> None:
    """Other 4xx and SMTP 5xx are permanent with the service's words; 429, 503, 5xx, 408, no
    answer and SMTP 4xx are transient, with the wait the service asked for."""
    assert classify([answer], APPRISE, NOW) == expected


def test_nothing_answered_keeps_apprises_reason_and_is_transient() -> None:
    """With no answer captured (or only successful ones) the reason is Apprise's, transient."""
    assert classify([], APPRISE, NOW) == Verdict(APPRISE)
    assert classify([HttpAnswer(200, body="ok")], APPRISE, NOW) == Verdict(APPRISE)


def test_mixed_answers_are_permanent_only_if_every_failure_is() -> None:
    """One chat not found and one chat rate-limited: transient, waiting as long as asked."""
    verdict = classify(
        [telegram(400, "Bad Request: chat not found"), HttpAnswer(429, retry_after="12")],
        APPRISE,
        NOW,
    )
    assert (verdict.permanent, verdict.retry_after) == (False, 12.0)
    assert classify([HttpAnswer(401), HttpAnswer(200)], APPRISE, NOW).permanent


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After is delta-seconds or an HTTP date, measured from now."""
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 1.5 ", NOW) == 1.5
    date = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(date, NOW) == 90.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("99999999", MAX_RETRY_AFTER),
        ("-5", 0.0),
        ("Mon, 05 Jan 2026 11:00:00 GMT", 0.0),
        ("Fri, 05 Jan 2029 12:00:00 GMT", MAX_RETRY_AFTER),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_clamped_or_ignored(header: str | None, seconds: float | None) -> None:
    """A Retry-After in the past is 0, beyond 24 h is 24 h, and an unreadable one is ignored."""
    assert parse_retry_after(header, NOW) == seconds


def test_telegram_retry_after_in_the_body_is_clamped() -> None:
    """Telegram's ``parameters.retry_after`` is used when the header is missing, at most 24 h."""
    verdict = classify([telegram(429, "Too Many Requests", retry_after=10**9)], APPRISE, NOW)
    assert verdict.retry_after == MAX_RETRY_AFTER


def test_no_answer_after_sending_is_uncertain() -> None:
    """A request that got no answer after it may have reached the service (a read timeout)
    makes the failure uncertain; one refused while connecting does not."""
    read_timeout = HttpAnswer(None, error="ReadTimeout", maybe_sent=True)
    refused = HttpAnswer(None, error="ConnectionError")
    assert classify([read_timeout], APPRISE, NOW).uncertain
    assert not classify([refused], APPRISE, NOW).uncertain
    assert classify([refused, read_timeout], APPRISE, NOW).uncertain
