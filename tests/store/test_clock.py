"""The database's clock: replicas whose host clocks disagree agree on leases (real PostgreSQL; on
SQLite the host's clock is the database's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import DateTime, func, select

from monitor.matching.loader import RuleSet
from monitor.pipeline import CompiledRules, Pipeline
from monitor.settings import FeedSourceSettings, FetchSettings
from monitor.sources.feed import FeedSources
from monitor.store.clock import DatabaseClock
from monitor.store.db import Database
from monitor.store.tables import utcnow

AHEAD = timedelta(hours=1)


def skewed() -> datetime:
    """A host clock an hour fast."""
    return utcnow() + AHEAD


def server_now(db: Database) -> datetime:
    with db.engine.connect() as connection:
        value: datetime = connection.execute(
            select(func.clock_timestamp(type_=DateTime(timezone=True)))
        ).scalar_one()
    return value


@pytest.mark.postgres
def test_on_postgresql_the_time_is_the_servers_whatever_the_host_clock_says(
    postgres: Database,
) -> None:
    """After a sync the clock reads the server's time, not the skewed host clock, and runs on
    with the monotonic clock; the sync reports the skew."""
    ticks = [1000.0]
    clock = DatabaseClock(postgres, local=skewed, monotonic=lambda: ticks[0])
    assert abs(clock() - skewed()) < timedelta(seconds=1)  # before the first sync: the host's
    skew = clock.sync()
    assert skew is not None
    assert abs(skew + AHEAD) < timedelta(seconds=1)
    synced = clock()
    assert synced.tzinfo is UTC
    assert abs(synced - server_now(postgres)) < timedelta(seconds=1)
    ticks[0] += 30.5
    assert clock() - synced == timedelta(seconds=30.5)


def test_on_sqlite_the_host_clock_is_the_databases(tmp_path: Path) -> None:
    """On SQLite there is nothing to sync: the clock is the host's."""
    database = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        clock = DatabaseClock(database, local=skewed)
        assert clock.sync() is None
        assert abs(clock() - skewed()) < timedelta(seconds=1)
    finally:
        database.dispose()


@pytest.mark.postgres
async def test_a_replica_whose_host_clock_runs_ahead_takes_over_no_live_lease(
    postgres: Database,
) -> None:
    """With the database's clock, a replica on a host an hour fast leaves a fresh claim alone;
    with its own clock it would take the feeds over at once."""
    feeds = [
        FeedSourceSettings(id=f"f{n}", type="feed", url=f"http://127.0.0.1:9/f{n}.xml")
        for n in range(3)
    ]
    made: list[FeedSources] = []

    def replica(name: str, clock: Callable[[], datetime]) -> FeedSources:
        sources = FeedSources(
            feeds,
            FetchSettings(parsers=1),
            postgres,
            Pipeline(postgres, CompiledRules.build(RuleSet(rules=())), ("console",)),
            clock=clock,
            holder=name,
        )
        made.append(sources)
        return sources

    try:
        honest = DatabaseClock(postgres)
        fast = DatabaseClock(postgres, local=skewed)
        honest.sync()
        fast.sync()
        a = replica("a", honest)
        a.sync()
        assert len(a.due(10)) == 3
        assert replica("b", fast).due(10) == []
        assert len(replica("c", skewed).due(10)) == 3  # the hazard the database's clock avoids
    finally:
        for sources in made:
            await sources.close()
