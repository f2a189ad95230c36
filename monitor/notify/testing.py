"""An in-memory channel for tests, shipped beside the interface it fakes.

:class:`FakeChannel` looks to the outbox like :class:`monitor.notify.channels.Channel` (an ``id``, a
``format`` and ``async send(alert)``) but sends nothing: it records every alert, and on demand
fails each send with any exception or holds each send until released, to stand in for a target
that is down, buggy or hanging.
"""

from __future__ import annotations

import asyncio

from monitor.errors import DeliveryError
from monitor.models import Alert, Digest
from monitor.notify.render import Format

__all__ = ["FakeChannel"]


class FakeChannel:
    """A channel that records what it is asked to send.

    ``calls`` holds every alert passed to :meth:`send`, ``sent`` those it accepted (in order); the
    alerts of a digest count in both, and ``digest_calls`` and ``digests`` hold the digests.
    ``in_flight`` counts the sends currently held by :meth:`block`; ``entered`` is set whenever a
    send starts, so a test can wait for one without sleeping.
    """

    def __init__(self, channel_id: str = "fake", fmt: Format = Format.TEXT) -> None:
        self.id = channel_id
        self.format = fmt
        self.calls: list[Alert] = []
        self.sent: list[Alert] = []
        self.digest_calls: list[Digest] = []
        self.digests: list[Digest] = []
        self.in_flight = 0
        self.entered = asyncio.Event()
        self._error: Exception | None = None
        self._failures_left: int | None = None
        self._gate: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"FakeChannel(id={self.id!r}, sent={len(self.sent)})"

    @property
    def sent_match_ids(self) -> list[int]:
        return [alert.match_id for alert in self.sent]

    def fail(self, error: Exception | None = None, *, times: int | None = None) -> None:
        """Make sends raise ``error`` (a DeliveryError naming the channel by default): the next
        ``times`` sends, or every send until :meth:`recover`."""
        self._error = error or DeliveryError(f"channel {self.id!r}: the fake target is down")
        self._failures_left = times

    def recover(self) -> None:
        """Make sends succeed again."""
        self._error = None
        self._failures_left = None

    def block(self) -> None:
        """Hold every send (before it succeeds or fails) until :meth:`release`."""
        if self._gate is None or self._gate.is_set():
            self._gate = asyncio.Event()

    def release(self) -> None:
        """Let held sends, and every later one, go on."""
        if self._gate is not None:
            self._gate.set()

    async def send(self, alert: Alert) -> None:
        """Record ``alert``; wait while blocked; raise the configured error, if any."""
        self.calls.append(alert)
        await self._attempt()
        self.sent.append(alert)

    async def send_digest(self, digest: Digest) -> None:
        """Record ``digest`` (its alerts in ``calls`` and, once accepted, in ``sent``); wait while
        blocked; raise the configured error, if any."""
        self.calls.extend(digest.alerts)
        self.digest_calls.append(digest)
        await self._attempt()
        self.digests.append(digest)
        self.sent.extend(digest.alerts)

    async def _attempt(self) -> None:
        self.entered.set()
        gate = self._gate
        if gate is not None and not gate.is_set():
            self.in_flight += 1
            try:
                await gate.wait()
            finally:
                self.in_flight -= 1
        error = self._error
        if error is not None:
            if self._failures_left is not None:
                self._failures_left -= 1
                if self._failures_left <= 0:
                    self.recover()
            raise error
