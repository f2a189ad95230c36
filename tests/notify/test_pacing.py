"""Token buckets and rates (pure code on a fake clock), and a channel's ``rate`` setting."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.notify.pacing import Pacer, Rate, TokenBucket, parse_rate
from monitor.settings import load


def send_times(pacer: Pacer, count: int, start: float = 0.0) -> list[float]:
    """When ``count`` messages go out if each is sent as soon as the pacer allows."""
    now, times = start, []
    for _ in range(count):
        now += pacer.delay(now)
        pacer.take(now)
        times.append(now)
    return times


def test_strict_rate_spaces_every_send_by_its_interval() -> None:
    """At 1/s with a burst of 1, sends go out exactly one second apart."""
    assert send_times(Pacer([Rate(1, 1.0)], 0.0), 4) == [0.0, 1.0, 2.0, 3.0]


def test_burst_goes_at_once_then_the_rate_holds() -> None:
    """A full bucket of 3 lets three sends go at once; the fourth waits one interval."""
    assert send_times(Pacer([Rate(1, 1.0, burst=3)], 0.0), 5) == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_idle_time_refills_the_bucket_up_to_its_burst_only() -> None:
    """A long pause refills the bucket, but never beyond its burst."""
    pacer = Pacer([Rate(1, 1.0, burst=2)], 0.0)
    send_times(pacer, 2)
    assert send_times(pacer, 3, start=100.0) == [100.0, 100.0, 101.0]


def test_delay_takes_nothing() -> None:
    """Asking how long to wait does not spend a token."""
    pacer = Pacer([Rate(1, 1.0)], 0.0)
    assert pacer.delay(0.0) == pacer.delay(0.0) == 0.0
    pacer.take(0.0)
    assert pacer.delay(0.25) == pytest.approx(0.75)


def test_several_rates_each_hold() -> None:
    """A Telegram group (1/s and 20/min) sends no faster than one every three seconds."""
    times = send_times(Pacer([Rate(1, 1.0), Rate(20, 60.0)], 0.0), 21)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(3.0)
    # No sliding minute holds more than 20 sends.
    assert all(sum(1 for t in times if start <= t < start + 60) <= 20 for start in times)


def test_no_rates_never_waits() -> None:
    """A channel without rates (email, webhooks) is not paced."""
    assert send_times(Pacer([], 0.0), 3) == [0.0, 0.0, 0.0]


def test_bucket_is_ready_later_when_empty() -> None:
    """An empty bucket is ready again after one token's worth of time."""
    bucket = TokenBucket(Rate(20, 60.0), now=10.0)
    assert bucket.ready_at(10.0) == 10.0
    bucket.take(10.0)
    assert bucket.ready_at(10.0) == pytest.approx(13.0)
    assert bucket.ready_at(20.0) == 20.0


@pytest.mark.parametrize(
    ("text", "rate"),
    [("1/s", Rate(1, 1.0)), ("20/min", Rate(20, 60.0)), (" 100 / h ", Rate(100, 3600.0))],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    """Rates are written as count/unit with s, min or h."""
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0/s", "1/fortnight", "1", "-1/s", ""])
def test_bad_rates_are_refused_with_an_example(text: str) -> None:
    """Anything else is a ValueError that shows what a rate looks like."""
    with pytest.raises(ValueError, match="such as 1/s"):
        parse_rate(text)


def test_channel_rate_setting_is_parsed_and_a_bad_one_is_located(tmp_path: Path) -> None:
    """A channel's ``rate`` becomes a Rate; an unreadable one is a config problem at its line."""
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n"
        "  - {id: desk, url: 'json://127.0.0.1/hook', rate: 20/min}\n"
        "retry_first: 10s\nretry_max: 5m\ndelivery_lease: 20s\n",
        encoding="utf-8",
    )
    settings = load(config)
    assert settings.channels[0].rate == Rate(20, 60.0)
    assert settings.retry_first.total_seconds() == 10
    assert settings.retry_max.total_seconds() == 300
    assert settings.delivery_lease.total_seconds() == 20

    config.write_text(
        "channels:\n  - id: desk\n    url: 'json://127.0.0.1/hook'\n    rate: fast\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert f"{config}:4:" in str(caught.value)
    assert "such as 1/s" in str(caught.value)
