"""Where and when an alert goes, decided when its match is stored. Pure: no I/O, no clock.

For each match, :meth:`Policy.channels` names the channels: the rule's own ``notify`` when it
sets one, else the first route whose conditions hold (and those after it while routes say
``continue``), else the config's default ``notify``. Then :meth:`Policy.plan` gives each
delivery its due time and, when it is to be gathered with others into one digest, its batch:

* a channel with ``digest`` ("1h", "daily 08:00") takes digests only: every delivery waits for
  the channel's next slot, and a slot's deliveries go out as one message;
* a rule with ``throttle`` alerts at once, then gathers its further matches inside the window
  (per channel) and sends them as one digest when the window ends; the next match after that
  alerts at once again;
* a channel's ``quiet_hours`` hold every delivery but critical ones until the hours end (a
  digest slot that falls inside them is held too).

Before any of that, a match whose article is a rewrite of a story that matched the same rule
within ``story_window`` (their fingerprints differ in at most ``story_distance`` bits) is folded
into that story's alert as another outlet and gets no delivery of its own.

Deliveries that share a batch are due at the same moment and are sent together by the outbox;
deliveries without one are sent one by one, unless more than the channel's ``burst`` come due at
once, which the outbox sends as one digest too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.durations import parse_duration
from monitor.identity import distance
from monitor.matching.rules import Rule
from monitor.models import Severity

__all__ = [
    "DEFAULT_BURST",
    "ChannelPolicy",
    "DigestSchedule",
    "Plan",
    "Policy",
    "QuietHours",
    "Route",
    "zone",
]

DEFAULT_BURST = 20
"""More deliveries than this due at once for one channel go out as one digest."""

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock(text: str) -> time:
    found = _CLOCK.match(text.strip())
    if found is None:
        raise ValueError(f"{text.strip()!r} is not a time of day such as 08:00")
    return time(int(found.group(1)), int(found.group(2)))


def zone(name: str) -> tzinfo:
    """The time zone ``name`` ("UTC", "Europe/Berlin"); ValueError naming it when unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """When a digest-only channel gets its digests: every ``every`` (slots aligned to midnight
    in the channel's zone, so "1h" is on the hour), or daily ``at`` a time of day."""

    every: timedelta | None = None
    at: time | None = None

    @classmethod
    def parse(cls, text: str) -> DigestSchedule:
        """``"1h"``, ``"30m"`` or ``"daily 08:00"``; ValueError saying what is expected."""
        words = text.split()
        if len(words) == 2 and words[0].lower() == "daily":
            return cls(at=_clock(words[1]))
        try:
            every = parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a digest schedule: use a duration such as 1h, or daily HH:MM"
            ) from None
        if not timedelta(minutes=1) <= every <= timedelta(days=1):
            raise ValueError("a digest interval must be between 1m and 1d")
        return cls(every=every)

    def next_slot(self, now: datetime, where: tzinfo) -> datetime:
        """The first slot strictly after ``now`` (UTC)."""
        local = now.astimezone(where)
        midnight = datetime.combine(local.date(), time(), where)
        if self.every is not None:
            elapsed = local - midnight
            slots = elapsed // self.every + 1
            slot = midnight + slots * self.every
            following = datetime.combine(local.date() + timedelta(days=1), time(), where)
            return min(slot, following).astimezone(UTC)
        assert self.at is not None
        slot = datetime.combine(local.date(), self.at, where)
        if slot <= local:
            slot = datetime.combine(local.date() + timedelta(days=1), self.at, where)
        return slot.astimezone(UTC)

    def __str__(self) -> str:
        if self.every is not None:
            return str(self.every)
        assert self.at is not None
        return f"daily {self.at:%H:%M}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span (``"22:00-07:00"``, in the channel's zone) in which only critical alerts go."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        start, dash, end = text.partition("-")
        if not dash:
            raise ValueError(f"{text!r} is not a span of hours such as 22:00-07:00")
        quiet = cls(_clock(start), _clock(end))
        if quiet.start == quiet.end:
            raise ValueError("quiet hours must not start and end at the same time")
        return quiet

    def until(self, now: datetime, where: tzinfo) -> datetime | None:
        """When the quiet hours that ``now`` falls in end (UTC), or None if it is not in them."""
        local = now.astimezone(where)
        today, clock = local.date(), local.timetz().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= clock < self.end
            ends = today
        else:  # across midnight
            inside = clock >= self.start or clock < self.end
            ends = today + timedelta(days=1) if clock >= self.start else today
        if not inside:
            return None
        return datetime.combine(ends, self.end, where).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Route:
    """Channels for the matches that meet every condition given (an empty one always holds):
    a severity among ``severities``, at least ``min_severity``, a source tagged with one of
    ``source_tags``, a rule tagged with one of ``rule_tags``."""

    notify: tuple[str, ...]
    severities: frozenset[Severity] | None = None
    min_severity: Severity | None = None
    source_tags: frozenset[str] = frozenset()
    rule_tags: frozenset[str] = frozenset()
    carry_on: bool = False
    """Look at the next routes too (``continue: true``); by default the first that holds wins."""

    def holds(
        self, severity: Severity, rule_tags: Iterable[str], source_tags: Iterable[str]
    ) -> bool:
        if self.severities is not None and severity not in self.severities:
            return False
        if self.min_severity is not None and severity.rank < self.min_severity.rank:
            return False
        if self.source_tags and self.source_tags.isdisjoint(source_tags):
            return False
        return not (self.rule_tags and self.rule_tags.isdisjoint(rule_tags))


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """How one channel takes its alerts."""

    digest: DigestSchedule | None = None
    quiet_hours: QuietHours | None = None
    zone: tzinfo = UTC
    burst: int = DEFAULT_BURST


@dataclass(frozen=True, slots=True)
class Plan:
    """When one delivery is due, and the batch it is sent with (None: on its own)."""

    due: datetime
    batch: str | None = None


_IMMEDIATE = ChannelPolicy()


@dataclass(frozen=True)
class Policy:
    """Routing and timing for every channel (see the module docstring)."""

    default: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    channels: Mapping[str, ChannelPolicy] = field(default_factory=dict)
    source_tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    story_window: timedelta | None = timedelta(hours=48)
    """A match whose article is a rewrite of one that alerted for the same rule this recently
    is folded into that alert ("also reported by") instead of alerting again; None: never."""
    story_distance: int = 10
    """The most fingerprint bits (of 64) in which a rewrite may differ from the story."""

    def same_story(self, fingerprint: int | None, stories: Sequence[tuple[int, int]]) -> int | None:
        """The first of ``stories`` ((match id, fingerprint), oldest first) that ``fingerprint``
        is a rewrite of, or None."""
        if fingerprint is None or self.story_window is None:
            return None
        for match_id, known in stories:
            if distance(fingerprint, known) <= self.story_distance:
                return match_id
        return None

    def channels_for(self, rule: Rule, source_id: str) -> tuple[str, ...]:
        """The channels a match of ``rule`` on an article of ``source_id`` goes to."""
        if rule.notify is not None:
            return tuple(dict.fromkeys(rule.notify))
        chosen: list[str] = []
        matched = False
        tags = self.source_tags.get(source_id, ())
        for route in self.routes:
            if route.holds(rule.severity, rule.tags, tags):
                matched = True
                chosen += route.notify
                if not route.carry_on:
                    break
        return tuple(dict.fromkeys(chosen if matched else self.default))

    def plan(
        self,
        rule: Rule,
        channel: str,
        now: datetime,
        window: datetime | None,
    ) -> Plan:
        """When the delivery of a match of ``rule`` made ``now`` on ``channel`` is due, and with
        which batch. ``window`` is when the rule's throttle window on this channel opened (its
        last delivery sent on its own), if it did."""
        policy = self.channels.get(channel, _IMMEDIATE)
        if policy.digest is not None:
            slot = policy.digest.next_slot(now, policy.zone)
            plan = Plan(slot, f"digest:{slot.isoformat()}")
        elif rule.throttle is not None and window is not None and now < window + rule.throttle:
            end = window + rule.throttle
            plan = Plan(end, f"throttle:{rule.id}:{window.isoformat()}")
        else:
            plan = Plan(now)
        if policy.quiet_hours is not None and rule.severity is not Severity.CRITICAL:
            until = policy.quiet_hours.until(plan.due, policy.zone)
            if until is not None:
                plan = Plan(until, plan.batch)
        return plan
