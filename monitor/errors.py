"""Errors raised by monitor.

Every error monitor raises on purpose derives from :class:`MonitorError`. A subclass's docstring is
its default message. The tree::

    MonitorError
    ├── ConfigError            the config or a rule file is invalid (carries every Problem found)
    ├── DocumentError          one input document cannot be read or parsed (file, format, reason)
    │   └── NotAFeedError      a feed URL served something else (an HTML page, an API's JSON)
    ├── SourceError            a source could not be polled this time (the source id and reason)
    ├── DeliveryError          one channel could not deliver one alert (channel id and reason)
    └── SchemaError            the database's schema cannot be brought to this version's

Errors are values at the job boundary: a source job, a document or a delivery that fails is caught
where its job starts, logged once with its ``stage`` and id, recorded, and retried later. Only a
ConfigError or a SchemaError at start-up stops the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """monitor failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong in one file, at one line (1-based; 0 when the line is unknown)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


class ConfigError(MonitorError):
    """The configuration or the rules are invalid."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or None)


class DocumentError(MonitorError):
    """The document cannot be read."""


class NotAFeedError(DocumentError):
    """The document is not a feed."""


class SourceError(MonitorError):
    """The source could not be polled."""


class SchemaError(MonitorError):
    """The database's schema cannot be upgraded to this version's.

    The message names the database by its masked URL (never its password), says what is wrong
    and what to do.
    """


class DeliveryError(MonitorError):
    """The alert could not be delivered.

    ``permanent``: the service refused the message in a way no retry can fix (a bad token, an
    unknown chat, a refused recipient); the outbox dead-letters it at once. ``retry_after``: the
    service asked for at least this many seconds before the next attempt (a 429 or 503).
    ``uncertain``: the send failed without an answer after the service may have received the
    alert (a timeout); a retry may deliver it twice, and the outbox counts it as such.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
        self.uncertain = uncertain
