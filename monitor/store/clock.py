"""The database's clock: the one time every replica of the daemon agrees on.

Claims (:mod:`monitor.store.claims`, :mod:`monitor.store.outbox`) compare one replica's lease end
with another replica's "now", and a feed's next check is set by one replica and read by the others.
Host clocks drift and are set wrong; a replica whose clock runs a minute ahead would take over
every lease a minute early, and fetch feeds twice at once. So the time is the database's.

On PostgreSQL :meth:`DatabaseClock.sync` reads the server's ``clock_timestamp()`` together with the
local monotonic clock; the time is then the server's at the sync plus the monotonic time elapsed
since, so it never steps when the host's wall clock is set, and calling it costs no query. The
reading is placed at the middle of its round trip, so it is off by at most half of one (well under
a millisecond nearby). The daemon syncs at start and every minute after: two clocks drift apart
by parts per million, microseconds a minute.

On SQLite the database is a file on this host's disk, and every process using it runs on this host:
the host's clock is the database's, and :meth:`DatabaseClock.sync` has nothing to do. (SQLite has
no server that could keep a time of its own.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, func, select

from monitor.store.db import Database
from monitor.store.tables import utcnow

__all__ = ["DatabaseClock"]


class DatabaseClock:
    """Now, by the database's clock (see the module doc); call it for an aware UTC datetime.

    Until the first :meth:`sync` (and always on SQLite) it is ``local``, the host's clock. Safe to
    call from any thread.
    """

    def __init__(
        self,
        db: Database,
        *,
        local: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._local = local
        self._monotonic = monotonic
        self._base: tuple[datetime, float] | None = None
        """The server's time at the last sync, and the monotonic time it corresponds to."""

    def sync(self) -> timedelta | None:
        """Read the server's clock (blocking: one short query). Returns how far it is ahead of
        this host's clock (negative: behind), or None where the host's clock is the database's."""
        if self.db.dialect != "postgresql":
            return None
        statement = select(func.clock_timestamp(type_=DateTime(timezone=True)))
        with self.db.engine.connect() as connection:
            before = self._monotonic()
            server: datetime = connection.execute(statement).scalar_one()
            after = self._monotonic()
        self._base = (server.astimezone(UTC), (before + after) / 2)
        return self() - self._local()

    def __call__(self) -> datetime:
        base = self._base
        if base is None:
            return self._local()
        server, at = base
        return server + timedelta(seconds=self._monotonic() - at)
