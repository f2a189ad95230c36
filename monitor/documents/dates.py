"""Dates found in documents -> timezone-aware UTC datetimes.

Every function here returns an aware UTC ``datetime`` or ``None``; none of them raises, whatever
it is given. ``None`` means "no usable date": absent, unparseable, or outside the years 1900-9999
(earlier is a placeholder or a typo in a news document, and near the ends of the ``datetime``
range converting to UTC would overflow). A date without a UTC offset is taken to be UTC: the only
assumption that needs no clock and no locale.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, date, datetime

_MIN_YEAR = 1900
_MAX_YEAR = 9999


def to_utc(value: datetime) -> datetime | None:
    """``value`` in UTC (naive means UTC already), or None when it is out of range."""
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    if not _MIN_YEAR <= aware.year <= _MAX_YEAR:
        return None
    return aware


def parse_date(value: object) -> datetime | None:
    """A date given as text (ISO 8601 or RFC 2822), a ``datetime`` or a ``date`` (midnight UTC)."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return to_utc(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        # Python 3.11 reads nearly all of ISO 8601 here, including "Z" and a bare date.
        return to_utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        # RFC 2822, as in e-mail and RSS, which JSON and front matter sometimes copy.
        return to_utc(email.utils.parsedate_to_datetime(text))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def from_struct_time(value: object) -> datetime | None:
    """A ``time.struct_time`` that is already UTC (as feedparser gives), converted."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return to_utc(datetime(*value[:6], tzinfo=UTC))
    except (ValueError, TypeError, OverflowError):
        return None
