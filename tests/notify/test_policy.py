"""Routing and timing of alerts (monitor.notify.policy): pure, on fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.matching.rules import Rule
from monitor.models import Severity
from monitor.notify.policy import (
    ChannelPolicy,
    DigestSchedule,
    Plan,
    Policy,
    QuietHours,
    Route,
    zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2026, 3, 10, 12, 20, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("spec", "now", "where", "slot"),
    [
        ("1h", "2026-03-10T12:20:00+00:00", UTC, "2026-03-10T13:00:00+00:00"),
        ("1h", "2026-03-10T13:00:00+00:00", UTC, "2026-03-10T14:00:00+00:00"),
        ("30m", "2026-03-10T23:45:00+00:00", UTC, "2026-03-11T00:00:00+00:00"),
        ("7h", "2026-03-10T22:00:00+00:00", UTC, "2026-03-11T00:00:00+00:00"),
        ("daily 08:00", "2026-03-10T06:59:00+00:00", BERLIN, "2026-03-10T07:00:00+00:00"),
        ("daily 08:00", "2026-03-10T07:00:00+00:00", BERLIN, "2026-03-11T07:00:00+00:00"),
        ("daily 08:00", "2026-03-10T06:59:00+00:00", UTC, "2026-03-10T08:00:00+00:00"),
        ("daily 8:00", "2026-03-10T08:00:00+00:00", UTC, "2026-03-11T08:00:00+00:00"),
    ],
)
def test_digest_slots_are_on_the_interval_or_the_daily_time(
    spec: str, now: str, where: ZoneInfo, slot: str
) -> None:
    """The next slot is the first one strictly after now, in the channel's zone."""
    assert DigestSchedule.parse(spec).next_slot(at(now), where) == at(slot)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hourly", "not a digest schedule"),
        ("daily 25:00", "not a time of day"),
        ("10s", "between 1m and 1d"),
        ("2d", "between 1m and 1d"),
    ],
)
def test_a_bad_digest_schedule_says_what_is_expected(spec: str, message: str) -> None:
    """Malformed schedules are refused with the accepted forms named."""
    with pytest.raises(ValueError, match=message):
        DigestSchedule.parse(spec)


@pytest.mark.parametrize(
    ("span", "now", "until"),
    [
        ("22:00-07:00", "2026-03-10T23:30:00+00:00", "2026-03-11T07:00:00+00:00"),
        ("22:00-07:00", "2026-03-10T03:00:00+00:00", "2026-03-10T07:00:00+00:00"),
        ("22:00-07:00", "2026-03-10T07:00:00+00:00", None),
        ("22:00-07:00", "2026-03-10T21:59:00+00:00", None),
        ("12:00-14:00", "2026-03-10T12:20:00+00:00", "2026-03-10T14:00:00+00:00"),
        ("12:00-14:00", "2026-03-10T14:00:00+00:00", None),
    ],
)
def test_quiet_hours_end_at_their_end_time(span: str, now: str, until: str | None) -> None:
    """Inside the span (across midnight too), the hold lasts until its end; outside, none."""
    expected = at(until) if until else None
    assert QuietHours.parse(span).until(at(now), UTC) == expected


def test_quiet_hours_are_read_in_the_channel_zone() -> None:
    """22:00-07:00 in Berlin (UTC+1 in March) ends at 06:00 UTC."""
    assert QuietHours.parse("22:00-07:00").until(at("2026-03-10T22:30:00+00:00"), BERLIN) == at(
        "2026-03-11T06:00:00+00:00"
    )


@pytest.mark.parametrize("span", ["22:00", "22:00-22:00", "late-early"])
def test_bad_quiet_hours_are_refused(span: str) -> None:
    """A span needs two different times of day."""
    with pytest.raises(ValueError, match=r"span of hours|same time|time of day"):
        QuietHours.parse(span)


def test_an_unknown_time_zone_is_named() -> None:
    """The unknown zone is quoted in the error."""
    with pytest.raises(ValueError, match="'Mars/Olympus'"):
        zone("Mars/Olympus")


CRITICAL = Rule(id="crit", name="Crit", severity=Severity.CRITICAL, tags=("kz",))
ROUTINE = Rule(id="routine", name="Routine", severity=Severity.LOW)
OWN = Rule(id="own", name="Own", severity=Severity.CRITICAL, notify=("mail",))
THROTTLED = Rule(id="burst", name="Burst", severity=Severity.HIGH, throttle=timedelta(minutes=10))

POLICY = Policy(
    default=("console",),
    routes=(
        Route(notify=("telegram", "mail"), severities=frozenset({Severity.CRITICAL})),
        Route(notify=("slack",), source_tags=frozenset({"wire"}), carry_on=True),
        Route(notify=("desk",), min_severity=Severity.HIGH),
    ),
    source_tags={"reuters": ("wire", "en")},
)


@pytest.mark.parametrize(
    ("rule", "source", "channels"),
    [
        (CRITICAL, "blog", ("telegram", "mail")),
        (CRITICAL, "reuters", ("telegram", "mail")),
        (ROUTINE, "reuters", ("slack",)),
        (THROTTLED, "reuters", ("slack", "desk")),
        (THROTTLED, "blog", ("desk",)),
        (ROUTINE, "blog", ("console",)),
        (OWN, "reuters", ("mail",)),
    ],
)
def test_routes_choose_channels_in_order(rule: Rule, source: str, channels: tuple[str]) -> None:
    """The first route that holds wins, "continue" looks further, a rule's notify overrides
    all, and the default takes what no route does."""
    assert POLICY.channels_for(rule, source) == channels


def test_a_route_by_rule_tag() -> None:
    """A rule tag condition holds for a rule carrying one of the tags."""
    policy = Policy(routes=(Route(notify=("kz-desk",), rule_tags=frozenset({"kz"})),))
    assert policy.channels_for(CRITICAL, "x") == ("kz-desk",)
    assert policy.channels_for(ROUTINE, "x") == ()


TIMED = Policy(
    channels={
        "digest": ChannelPolicy(digest=DigestSchedule.parse("1h")),
        "night": ChannelPolicy(quiet_hours=QuietHours.parse("22:00-07:00")),
    }
)


def test_an_unthrottled_alert_is_due_now() -> None:
    """No throttle, no digest, no quiet hours: due at once, on its own."""
    assert TIMED.plan(ROUTINE, "mail", NOON, None) == Plan(NOON)


def test_a_throttled_rule_gathers_matches_until_its_window_ends() -> None:
    """Inside the window opened by the last lone alert, a match joins the window's batch."""
    opened = NOON - timedelta(minutes=4)
    plan = TIMED.plan(THROTTLED, "mail", NOON, opened)
    assert plan == Plan(opened + timedelta(minutes=10), f"throttle:burst:{opened.isoformat()}")
    assert TIMED.plan(THROTTLED, "mail", NOON, NOON - timedelta(minutes=10)) == Plan(NOON)
    assert TIMED.plan(THROTTLED, "mail", NOON, None) == Plan(NOON)


def test_a_digest_channel_batches_by_slot() -> None:
    """Every alert for a digest channel waits for the next slot, batched by it."""
    slot = at("2026-03-10T13:00:00+00:00")
    assert TIMED.plan(CRITICAL, "digest", NOON, None) == Plan(slot, f"digest:{slot.isoformat()}")


def test_quiet_hours_hold_all_but_critical_alerts() -> None:
    """At night a routine alert waits for the morning; a critical one goes at once."""
    night = at("2026-03-10T23:00:00+00:00")
    assert TIMED.plan(ROUTINE, "night", night, None) == Plan(at("2026-03-11T07:00:00+00:00"))
    assert TIMED.plan(CRITICAL, "night", night, None) == Plan(night)
