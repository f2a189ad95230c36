"""Query parameters -> queries: limits, lists, times, and the messages of bad ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from multidict import MultiDict

from monitor.web.params import (
    DEFAULT_LIMIT,
    FEED_PARAMETERS,
    MAX_LIMIT,
    BadParameter,
    delivery_query,
    match_query,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def query(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_limits_default_clamp_and_never_convert_huge_numbers() -> None:
    """No limit is the default page; above the maximum is the maximum, however many digits."""
    assert match_query(query(), NOW).limit == DEFAULT_LIMIT
    assert match_query(query(("limit", "7")), NOW).limit == 7
    assert match_query(query(("limit", "1000000000")), NOW).limit == MAX_LIMIT
    assert match_query(query(("limit", "9" * 5000)), NOW).limit == MAX_LIMIT
    assert delivery_query(query(("limit", "1000000000"))).limit == MAX_LIMIT
    for bad in ("0", "-1", "1.5", "²", "٣", " 5"):
        with pytest.raises(BadParameter, match=r"^limit: must be a whole number"):
            match_query(query(("limit", bad)), NOW)


def test_filters_take_repeated_and_comma_separated_values_and_ignore_empty_ones() -> None:
    """severity=a,b and severity=a&severity=b mean the same, duplicates once; an empty value
    (an unset form field) filters nothing."""
    found = match_query(
        query(
            ("severity", "high,critical"),
            ("severity", "high"),
            ("rule", "a"),
            ("source", ""),
            ("q", ""),
        ),
        NOW,
    ).filters
    assert found.severities == ("high", "critical")
    assert found.rules == ("a",)
    assert found.sources == ()
    assert found.text is None


def test_times_are_iso_8601_or_durations_back_from_now() -> None:
    """since/until take ISO 8601 (no zone: UTC; a + decoded as a space still works) or a
    duration such as 24h; anything else names the parameter and the forms it takes."""

    def since(value: str) -> datetime | None:
        return match_query(query(("since", value)), NOW).filters.since

    assert since("24h") == NOW - timedelta(hours=24)
    assert since("2026-02-01") == datetime(2026, 2, 1, tzinfo=UTC)
    assert since("2026-02-01T10:00:00Z") == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert since("2026-02-01T10:00:00+02:00") == datetime(2026, 2, 1, 8, tzinfo=UTC)
    assert since("2026-02-01T10:00:00 02:00") == datetime(2026, 2, 1, 8, tzinfo=UTC)
    assert since("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    for bad in ("yesterday", "24 hours", "-1h", "2026-02-30", "0001-01-01T00:00:00+05:00"):
        with pytest.raises(BadParameter, match=r"^since: .* is neither an ISO 8601 time"):
            since(bad)
    with pytest.raises(BadParameter, match=r"^since: must be earlier than until"):
        match_query(query(("since", "1h"), ("until", "2h")), NOW)


def test_unknown_and_repeated_parameters_are_refused() -> None:
    """A parameter the endpoint does not take, or a single-valued one given twice, is a
    BadParameter naming it."""
    with pytest.raises(BadParameter, match=r"^sevrity: unknown parameter") as unknown:
        match_query(query(("sevrity", "high")), NOW)
    assert unknown.value.name == "sevrity"
    with pytest.raises(BadParameter, match=r"^before: unknown parameter"):
        match_query(query(("before", "3")), NOW, known=FEED_PARAMETERS)
    with pytest.raises(BadParameter, match=r"^q: given more than once"):
        match_query(query(("q", "a"), ("q", "b")), NOW)
    with pytest.raises(BadParameter, match=r"^status: 'lost' is not one of pending, sent, dead"):
        delivery_query(query(("status", "lost")))
