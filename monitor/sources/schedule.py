"""When to check a feed next: pure decisions from what the feed and the server said.

* **Adaptive interval** (the default): the median gap between the feed's recent posts, so a wire
  that posts every few minutes is read every few minutes and a weekly blog daily, clamped to
  ``[min_interval, max_interval]``. Without dates, a middle value of one hour (clamped too).
* A per-feed ``interval`` replaces the adaptive one.
* The feed's own hints are a floor: RSS ``ttl`` and HTTP ``Cache-Control: max-age`` ("do not ask
  again before"), still capped at ``max_interval``; ``skipHours``/``skipDays`` (GMT) move the next
  check out of the hours and days the publisher asked us to skip.
* **After an error**: exponential backoff from ``min_interval``, doubling per consecutive failure,
  capped at 24 h; a Retry-After from the server is a floor (it was clamped to 24 h on reading).
* Every delay gets ±10% jitter, so thousands of feeds added together do not stay in lockstep.

Nothing here reads a clock or a random source of its own: both are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median

from monitor.sources.parsing import FeedHints

MAX_BACKOFF = timedelta(hours=24)
_DEFAULT_INTERVAL = timedelta(hours=1)
_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Timing:
    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(hours=24)
    fixed: timedelta | None = None
    """A per-feed interval: replaces the adaptive one."""


def posting_interval(published: Iterable[datetime | None], now: datetime) -> timedelta | None:
    """The median gap between distinct publication times (future ones ignored), or None when
    there are fewer than two."""
    times = sorted({when for when in published if when is not None and when <= now})
    if len(times) < 2:
        return None
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
    return timedelta(seconds=median(gaps))


def next_check(
    now: datetime,
    timing: Timing,
    *,
    posting: timedelta | None = None,
    hints: FeedHints | None = None,
    max_age: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """The next check after a successful one (a 200 or a 304)."""
    if timing.fixed is not None:
        interval = timing.fixed
    else:
        interval = _clamp(posting or _DEFAULT_INTERVAL, timing)
        floors = [interval]
        if hints is not None and hints.ttl_minutes:
            floors.append(timedelta(minutes=hints.ttl_minutes))
        if max_age:
            floors.append(timedelta(seconds=max_age))
        interval = min(max(floors), max(timing.max_interval, timing.min_interval))
    when = now + _jitter(interval, rng)
    return _outside_skipped(when, hints) if hints is not None else when


def after_failure(
    now: datetime,
    timing: Timing,
    failures: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """The next check after ``failures`` consecutive failures (1 for the first)."""
    base = max(timing.min_interval, timedelta(seconds=1))
    delay = min(base * 2 ** min(max(failures - 1, 0), 20), MAX_BACKOFF)
    delay = _jitter(delay, rng)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return now + min(delay, MAX_BACKOFF)


def _clamp(interval: timedelta, timing: Timing) -> timedelta:
    return max(timing.min_interval, min(interval, timing.max_interval))


def _jitter(delay: timedelta, rng: random.Random | None) -> timedelta:
    if rng is None:
        return delay
    return delay * (1 + rng.uniform(-_JITTER, _JITTER))


def _outside_skipped(when: datetime, hints: FeedHints) -> datetime:
    """The first whole hour at or after ``when`` that is not in skipHours or skipDays (GMT)."""
    if not hints.skip_hours and not hints.skip_days:
        return when
    if len(hints.skip_hours) >= 24 or len(hints.skip_days) >= 7:
        return when  # a feed that skips everything asked for nothing we can honour
    moved = when
    for _ in range(24 * 8):
        if moved.hour not in hints.skip_hours and moved.weekday() not in hints.skip_days:
            return moved
        moved = moved.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return when
