"""Pacing: token buckets that keep a channel within its service's rate limits.

Pure code: no clock, no sleeping. Callers pass the time (any monotonic seconds) and get back when
they may send; the outbox does the waiting. Each channel has its own :class:`Pacer`, so a
channel waiting for a token never delays another.

A :class:`Rate` is ``count`` messages per ``period`` seconds with a bucket of ``burst`` tokens:
a full bucket lets ``burst`` messages go at once, then one more every ``period / count``
seconds. A burst of 1 is strict pacing (no two messages closer than ``period / count``), which
keeps even a sliding window within ``count`` per ``period``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Pacer", "Rate", "TokenBucket", "parse_rate"]

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_UNITS |= {"h": 3600.0, "hour": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` messages per ``period`` seconds, in bursts of at most ``burst``."""

    count: float
    period: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.count > 0 and self.period > 0 and self.burst >= 1):
            raise ValueError("a rate needs a positive count and period and a burst of at least 1")

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count:g}/{unit}" + (f" (burst {self.burst})" if self.burst > 1 else "")


def parse_rate(text: str) -> Rate:
    """``"1/s"``, ``"20/min"``, ``"100/h"`` -> a strict Rate (burst 1).

    Raises ValueError with an example for anything else.
    """
    found = _PATTERN.match(text.lower()) if isinstance(text, str) else None
    if not found or found.group(2) not in _UNITS or float(found.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate such as 1/s, 20/min or 100/h")
    return Rate(float(found.group(1)), _UNITS[found.group(2)])


class TokenBucket:
    """One rate's bucket. Times are seconds on the caller's monotonic clock, never decreasing."""

    __slots__ = ("_stamp", "_tokens", "rate")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate.burst)
        self._stamp = now

    def _level(self, at: float) -> float:
        gained = max(0.0, at - self._stamp) * self.rate.per_second
        return min(float(self.rate.burst), self._tokens + gained)

    def ready_at(self, now: float) -> float:
        """The earliest time, not before ``now``, at which a token is available."""
        base = max(now, self._stamp)
        missing = 1.0 - self._level(base)
        return base if missing <= 1e-9 else base + missing / self.rate.per_second

    def take(self, at: float) -> None:
        """Spend one token at ``at``, which must be at or after :meth:`ready_at`."""
        self._tokens = max(0.0, self._level(at) - 1.0)
        self._stamp = max(at, self._stamp)


class Pacer:
    """The buckets of one channel: a send needs a token from each. No rates: never waits."""

    __slots__ = ("_buckets",)

    def __init__(self, rates: Sequence[Rate], now: float) -> None:
        self._buckets = [TokenBucket(rate, now) for rate in rates]

    @property
    def rates(self) -> list[Rate]:
        return [bucket.rate for bucket in self._buckets]

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until every bucket has a token (0.0: send now). Takes nothing."""
        return max((bucket.ready_at(now) for bucket in self._buckets), default=now) - now

    def take(self, now: float) -> None:
        """Spend a token from each bucket: call once per send, when :meth:`delay` is 0."""
        for bucket in self._buckets:
            bucket.take(now)
