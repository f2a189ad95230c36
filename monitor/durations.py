"""Durations as people write them in config: ``30s``, ``5m``, ``1h``, ``7d``, or seconds.

A duration is never negative and never longer than :data:`MAX_DURATION`: past that it is a typo,
and a few more digits would overflow ``timedelta`` (OverflowError instead of a config problem).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_DURATION = timedelta(days=3650)
"""The longest duration accepted: ten years."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_EXAMPLES = "a duration such as 30s, 5m, 1h or 7d"


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``, 30 (seconds) or a timedelta.

    Raises ValueError for anything else, and for a negative duration or one longer than
    :data:`MAX_DURATION`. Zero is a duration; callers that need a positive one check for it.
    """
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not {_EXAMPLES}")  # noqa: TRY004 (pydantic wants ValueError)
    elif isinstance(value, int | float):
        # Compared as given: float() of a huge int would raise OverflowError.
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{value!r} is not {_EXAMPLES}")
        seconds = value
    elif isinstance(value, str) and (found := _PATTERN.match(value)):
        number, unit = found.groups()
        seconds = float(number) * _UNITS[unit or "s"]  # float() of many digits is inf, not an error
    else:
        raise ValueError(f"{value!r} is not {_EXAMPLES}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration cannot be longer than {format_duration(MAX_DURATION)}")
    return value if isinstance(value, timedelta) else timedelta(seconds=float(seconds))


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _validate(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        # pydantic would prefix a ValueError's message with "Value error, ".
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("duration", "must be longer than 0s")
    return value


_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhdw]?\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "examples": ["30s", "5m", "1h", "7d"],
}
"""How editors should check a duration: pydantic's own schema says ISO 8601 ("PT5M")."""

Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration),
    WithJsonSchema(_JSON_SCHEMA),
]
"""A config duration (see :func:`parse_duration`); written back as ``5m``, ``2h``..."""

PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A duration that must not be zero: an interval, a retry window."""
