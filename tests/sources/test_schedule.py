"""Scheduling decisions: adaptive intervals, the feed's hints, and backoff (pure functions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.sources.parsing import FeedHints, feed_hints
from monitor.sources.schedule import Timing, after_failure, next_check, posting_interval

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # a Sunday
MINUTE = timedelta(minutes=1)


def test_posting_interval_is_the_median_gap_ignoring_future_dates() -> None:
    """Gaps of 10, 10 and 40 minutes give 10; a date in the future and a repeat are ignored."""
    times = [NOW - 60 * MINUTE, NOW - 50 * MINUTE, NOW - 40 * MINUTE, NOW, NOW, NOW + 90 * MINUTE]
    assert posting_interval(times, NOW) == 10 * MINUTE
    assert posting_interval([NOW, None], NOW) is None


@pytest.mark.parametrize(
    ("posting", "expected"),
    [
        (timedelta(minutes=1), timedelta(minutes=5)),  # clamped up to min_interval
        (timedelta(minutes=42), timedelta(minutes=42)),
        (timedelta(days=30), timedelta(hours=24)),  # clamped down to max_interval
        (None, timedelta(hours=1)),  # no dates: the middle default
    ],
)
def test_adaptive_interval_follows_posting_frequency(
    posting: timedelta | None, expected: timedelta
) -> None:
    """The next check is one posting interval away, within [min_interval, max_interval]."""
    assert next_check(NOW, Timing(), posting=posting) == NOW + expected


def test_fixed_interval_overrides_adaptive_and_hints() -> None:
    """A per-feed interval wins over posting frequency, ttl and max-age."""
    timing = Timing(fixed=timedelta(minutes=2))
    hints = FeedHints(ttl_minutes=600)
    assert next_check(NOW, timing, posting=timedelta(hours=5), hints=hints, max_age=9999) == (
        NOW + timedelta(minutes=2)
    )


def test_ttl_and_max_age_are_floors_capped_at_max_interval() -> None:
    """ttl and Cache-Control max-age delay the next check, but never past max_interval."""
    posting = timedelta(minutes=10)
    assert next_check(NOW, Timing(), posting=posting, hints=FeedHints(ttl_minutes=60)) == (
        NOW + timedelta(hours=1)
    )
    assert next_check(NOW, Timing(), posting=posting, max_age=1800) == NOW + 30 * MINUTE
    assert next_check(NOW, Timing(), posting=posting, max_age=10**7) == NOW + timedelta(hours=24)


def test_skip_hours_and_days_move_the_check_out() -> None:
    """A check due in a skipped hour moves to the next allowed hour; skipped days too."""
    hints = FeedHints(skip_hours=frozenset({12, 13}))
    assert next_check(NOW - 10 * MINUTE, Timing(), posting=10 * MINUTE, hints=hints) == (
        datetime(2026, 11, 29, 14, tzinfo=UTC)
    )
    sunday = FeedHints(skip_days=frozenset({6}))
    assert next_check(NOW, Timing(), posting=10 * MINUTE, hints=sunday) == (
        datetime(2026, 11, 30, 0, tzinfo=UTC)
    )


def test_backoff_doubles_and_caps_at_a_day() -> None:
    """After n failures: min_interval x 2^(n-1), at most 24 h; Retry-After is a floor."""
    timing = Timing()
    assert after_failure(NOW, timing, 1) == NOW + 5 * MINUTE
    assert after_failure(NOW, timing, 3) == NOW + 20 * MINUTE
    assert after_failure(NOW, timing, 40) == NOW + timedelta(hours=24)
    assert after_failure(NOW, timing, 1, retry_after=3600) == NOW + timedelta(hours=1)


def test_jitter_stays_within_ten_percent() -> None:
    """Jittered delays spread around the interval by at most 10%."""
    rng = random.Random(7)
    delays = {
        (next_check(NOW, Timing(), posting=timedelta(hours=1), rng=rng) - NOW) for _ in range(50)
    }
    assert len(delays) > 40
    assert all(timedelta(minutes=54) <= d <= timedelta(minutes=66) for d in delays)


def test_feed_hints_are_read_from_the_channel() -> None:
    """RSS ttl, skipHours and skipDays are read from the document head."""
    body = (
        b"<rss><channel><ttl>90</ttl><skipHours><hour>1</hour><hour>2</hour></skipHours>"
        b"<skipDays><day>Saturday</day><day>Funday</day></skipDays></channel></rss>"
    )
    assert feed_hints(body) == FeedHints(90, frozenset({1, 2}), frozenset({5}))
