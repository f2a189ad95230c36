"""Dates in documents -> aware UTC datetimes or None, never an exception."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.documents.dates import from_struct_time, parse_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2022-01-07T10:00:00Z", datetime(2022, 1, 7, 10, tzinfo=UTC), id="iso-z"),
        pytest.param("2022-01-07T10:00:00+06:00", datetime(2022, 1, 7, 4, tzinfo=UTC), id="offset"),
        pytest.param("2022-01-07 10:00", datetime(2022, 1, 7, 10, tzinfo=UTC), id="naive-is-utc"),
        pytest.param("2022-01-07", datetime(2022, 1, 7, tzinfo=UTC), id="date-only"),
        pytest.param(
            "Fri, 07 Jan 2022 10:00:00 +0600", datetime(2022, 1, 7, 4, tzinfo=UTC), id="rfc2822"
        ),
        pytest.param(date(2022, 1, 7), datetime(2022, 1, 7, tzinfo=UTC), id="date-object"),
        pytest.param(
            datetime(2022, 1, 7, 10, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2022, 1, 7, 15, tzinfo=UTC),
            id="aware-datetime",
        ),
        pytest.param("1899-12-31T00:00:00Z", None, id="before-1900"),
        pytest.param("0001-01-01T00:00:00+14:00", None, id="underflows-in-utc"),
        pytest.param("9999-12-31T23:59:59-12:00", None, id="overflows-in-utc"),
        pytest.param("yesterday", None, id="words"),
        pytest.param("", None, id="empty"),
        pytest.param(20220107, None, id="number"),
        pytest.param(None, None, id="none"),
    ],
)
def test_parse_date(value: object, expected: datetime | None) -> None:
    """ISO 8601, RFC 2822 and date objects convert to UTC; anything unusable is None."""
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            time.struct_time((2022, 1, 7, 4, 0, 0, 4, 7, 0)),
            datetime(2022, 1, 7, 4, tzinfo=UTC),
            id="valid",
        ),
        pytest.param(time.struct_time((1850, 1, 1, 0, 0, 0, 0, 1, 0)), None, id="before-1900"),
        pytest.param(time.struct_time((2022, 13, 40, 0, 0, 0, 0, 1, 0)), None, id="impossible"),
        pytest.param((2022, 1, 7, 4, 0, 0, 4, 7, 0), None, id="plain-tuple"),
        pytest.param(None, None, id="none"),
    ],
)
def test_from_struct_time(value: object, expected: datetime | None) -> None:
    """feedparser's UTC struct_time converts to an aware datetime; nonsense is None."""
    assert from_struct_time(value) == expected


@given(st.text())
def test_any_text_parses_or_is_none(text: str) -> None:
    """No text makes parse_date raise, and what it returns is UTC."""
    parsed = parse_date(text)
    assert parsed is None or parsed.utcoffset() == timedelta(0)
