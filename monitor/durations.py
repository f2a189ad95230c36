"""Durations as people write them in config: ``30s``, ``5m``, ``1h``, ``7d``, or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``, 30 (seconds) or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 5m, 1h or 7d")  # noqa: TRY004 (pydantic wants ValueError)
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and (found := _PATTERN.match(value)):
        number, unit = found.groups()
        return timedelta(seconds=float(number) * _UNITS[unit or "s"])
    raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 1h or 7d")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
