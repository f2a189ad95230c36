"""Query parameters of the API, the Atom feed and the dashboard -> validated queries. Pure.

A parameter given empty (``?severity=``, as an HTML form sends an unset filter) counts as not
given. Filters that take several values take them repeated or comma-separated
(``severity=high&severity=critical``, ``severity=high,critical``). ``limit`` defaults to
:data:`DEFAULT_LIMIT`; larger values than :data:`MAX_LIMIT` are clamped to it, not refused, so a
client asking for everything gets a full page and a cursor to the next. Anything else that does
not parse, and any parameter the endpoint does not know (a typo would otherwise silently not
filter), raises :class:`BadParameter`, whose message starts with the parameter's name.

Times (``since``, ``until``) are ISO 8601 (``2026-01-31``, ``2026-01-31T08:00:00Z``; no zone
means UTC) or a duration back from now (``24h``, ``7d``; a bare number is seconds).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from monitor.durations import parse_duration
from monitor.models import Severity
from monitor.store.reads import MatchFilter
from monitor.store.repo import DEAD, PENDING, SENT

__all__ = [
    "DEFAULT_LIMIT",
    "DELIVERY_PARAMETERS",
    "FEED_PARAMETERS",
    "MATCH_PARAMETERS",
    "MAX_LIMIT",
    "MAX_TEXT",
    "BadParameter",
    "DeliveryQuery",
    "MatchQuery",
    "delivery_query",
    "match_query",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
"""The most rows one page holds."""
MAX_TEXT = 200
"""The longest search text, in characters."""

_FILTERS = ("rule", "severity", "source", "since", "until", "q")
MATCH_PARAMETERS = frozenset((*_FILTERS, "limit", "before", "total"))
FEED_PARAMETERS = frozenset((*_FILTERS, "limit"))
DELIVERY_PARAMETERS = frozenset(("status", "channel", "rule", "limit"))
DELIVERY_STATUSES = (PENDING, SENT, DEAD)
_ECHO = 40
"""Characters of a bad value quoted back in the message."""


class Params(Protocol):
    """What a query string is: aiohttp's ``request.query`` (a MultiDict) is one."""

    def keys(self) -> Iterable[str]: ...

    def getall(self, key: str, default: list[str]) -> list[str]: ...


class BadParameter(ValueError):
    """A query parameter that is unknown or does not parse; ``str()`` names it first."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class MatchQuery:
    """A page of matches: ``filters``, at most ``limit`` rows, after the match ``before`` (a
    match id: the last of the page before), and whether to count every page's rows."""

    filters: MatchFilter = field(default_factory=MatchFilter)
    limit: int = DEFAULT_LIMIT
    before: int | None = None
    total: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    status: str | None = None
    channel: str | None = None
    rule: str | None = None
    limit: int = DEFAULT_LIMIT


def match_query(
    params: Params, now: datetime, *, known: Collection[str] = MATCH_PARAMETERS
) -> MatchQuery:
    """The match query of ``params``; raises BadParameter. ``known``: the parameters the
    endpoint takes (others are refused)."""
    _check_known(params, known)
    since = _moment(params, "since", now)
    until = _moment(params, "until", now)
    if since is not None and until is not None and since >= until:
        raise BadParameter("since", "must be earlier than until")
    text = _one(params, "q")
    if text is not None and len(text) > MAX_TEXT:
        raise BadParameter("q", f"at most {MAX_TEXT} characters")
    severities = _many(params, "severity")
    for severity in severities:
        if severity not in Severity.__members__.values():
            choices = ", ".join(Severity)
            raise BadParameter("severity", f"{_echo(severity)} is not one of {choices}")
    filters = MatchFilter(
        rules=_many(params, "rule"),
        severities=severities,
        sources=_many(params, "source"),
        since=since,
        until=until,
        text=text,
    )
    before = _one(params, "before")
    return MatchQuery(
        filters=filters,
        limit=_limit(params),
        before=_whole(before, "before", low=1) if before is not None else None,
        total=_flag(params, "total"),
    )


def delivery_query(params: Params) -> DeliveryQuery:
    """The delivery listing of ``params``; raises BadParameter."""
    _check_known(params, DELIVERY_PARAMETERS)
    status = _one(params, "status")
    if status is not None and status not in DELIVERY_STATUSES:
        choices = ", ".join(DELIVERY_STATUSES)
        raise BadParameter("status", f"{_echo(status)} is not one of {choices}")
    return DeliveryQuery(
        status=status,
        channel=_one(params, "channel"),
        rule=_one(params, "rule"),
        limit=_limit(params),
    )


def _check_known(params: Params, known: Collection[str]) -> None:
    for name in params.keys():  # noqa: SIM118 (a MultiDict's keys() lists repeated keys)
        if name not in known:
            raise BadParameter(name, f"unknown parameter (known: {', '.join(sorted(known))})")


def _values(params: Params, name: str) -> list[str]:
    return [value for value in params.getall(name, []) if value != ""]


def _one(params: Params, name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0] if values else None


def _many(params: Params, name: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in _values(params, name):
        for part in value.split(","):
            if part.strip():
                found[part.strip()] = None
    return tuple(found)


def _limit(params: Params) -> int:
    value = _one(params, "limit")
    if value is None:
        return DEFAULT_LIMIT
    return min(_whole(value, "limit", low=1), MAX_LIMIT)


def _whole(value: str, name: str, *, low: int) -> int:
    """``value`` as an integer of ``low`` or more. Digits beyond what any row count or id can
    reach are not converted (int() of thousands of digits is slow, and refused past 4300)."""
    if not (value.isascii() and value.isdigit()):
        raise BadParameter(name, f"must be a whole number of {low} or more, not {_echo(value)}")
    number = int(value[:19]) if len(value) <= 19 else 10**19
    if number < low:
        raise BadParameter(name, f"must be a whole number of {low} or more, not {_echo(value)}")
    return number


def _flag(params: Params, name: str) -> bool:
    value = _one(params, name)
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadParameter(name, f"must be true or false, not {_echo(value)}")


def _moment(params: Params, name: str, now: datetime) -> datetime | None:
    value = _one(params, name)
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except (ValueError, OverflowError):
        pass
    # A "+" of a zone offset arrives as a space when the client did not percent-encode it.
    for candidate in dict.fromkeys((value, value.replace(" ", "+"))):
        try:
            when = datetime.fromisoformat(candidate)
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            continue
    raise BadParameter(
        name,
        f"{_echo(value)} is neither an ISO 8601 time (2026-01-31T08:00:00Z) "
        "nor a duration back from now (24h, 7d)",
    )


def _echo(value: str) -> str:
    return repr(value if len(value) <= _ECHO else value[:_ECHO] + "…")
