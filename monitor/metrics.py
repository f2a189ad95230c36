"""The daemon's counters and histograms, recorded where each stage finishes a unit of work.

One :class:`Metrics` per daemon, with a registry of its own (not prometheus_client's global
one), so tests and several daemons in one process never add to each other's counts. The stages
take one as an optional argument; without it they record into a private instance nobody reads.

Labels are bounded: a rule id, a channel id, a severity, a fixed outcome or status, and a fetch
error's reason folded into the fixed set :data:`FETCH_ERROR_REASONS` (HTTP statuses by class).
Never a URL or any text a server chose. What lives in the database (the outbox's depth, feed lag,
feeds by health) is read at scrape time by the collector of :mod:`monitor.web.metrics`.

For code that reloads the rules: call :meth:`Metrics.rules_loaded` after a reload that took
effect and :meth:`Metrics.rules_reload_failed` after one that was refused.
"""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FETCH_ERROR_REASONS", "FETCH_OUTCOMES", "Metrics", "fetch_error_reason"]

FETCH_OUTCOMES = ("ok", "not_modified", "error")
"""A feed poll's outcome: new content read and stored, a 304, or a failure (its reason counted in
``monitor_fetch_errors_total``)."""

FETCH_ERROR_REASONS = frozenset(
    {
        # monitor.sources.fetcher
        "timeout",
        "connection",
        "tls",
        "bad_url",
        "blocked_address",
        "too_many_redirects",
        "redirect_loop",
        "bad_redirect",
        "bad_encoding",
        "too_large",
        "gone",
        "rate_limited",
        "unavailable",
        "http_1xx",
        "http_2xx",
        "http_3xx",
        "http_4xx",
        "http_5xx",
        # monitor.sources.parsing
        "not_a_feed",
        "parse_error",
        "parse_timeout",
        "parse_memory",
        "parser_start",
        "stopped",
        # anything else that ended a poll (a database error while storing, a bug)
        "error",
        "other",
    }
)
"""The ``reason`` label values of ``monitor_fetch_errors_total``: the reasons feed health
records, with ``http_<status>`` folded into its class."""

MATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Seconds to match one article: tens of microseconds for a few rules, milliseconds for many."""
ALERT_BUCKETS = (
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    3 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    86400.0,
    3 * 86400.0,
    7 * 86400.0,
)
"""Seconds from publication to alert: seconds when a feed is pushed or polled often, hours for a
feed polled daily, days for old entries of a feed read for the first time."""


def fetch_error_reason(reason: str) -> str:
    """``reason`` (a fetch or parse error's slug) as a label value of the fixed set:
    ``http_404`` -> ``http_4xx``; a reason not in :data:`FETCH_ERROR_REASONS` -> ``other``."""
    if reason.startswith("http_") and reason[5:].isdigit() and len(reason) == 8:
        reason = f"http_{reason[5]}xx"
    return reason if reason in FETCH_ERROR_REASONS else "other"


class Metrics:
    """The daemon's metrics in their own registry (see the module docstring).

    Every method is safe to call from any thread: prometheus_client's values take a lock.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        on = self.registry
        self.fetches = Counter(
            "monitor_fetches_total",
            "Feed polls, by outcome: ok (read and stored), not_modified (304), error.",
            ["outcome"],
            registry=on,
        )
        self.fetch_errors = Counter(
            "monitor_fetch_errors_total",
            "Feed polls that failed, by reason (as in feed health; HTTP statuses by class).",
            ["reason"],
            registry=on,
        )
        self.articles = Counter(
            "monitor_articles_ingested_total",
            "Articles stored, from every source: new ones, and new versions of known ones.",
            ["kind"],
            registry=on,
        )
        self.matches = Counter(
            "monitor_matches_total",
            "Matches stored, by rule and severity.",
            ["rule", "severity"],
            registry=on,
        )
        self.deliveries = Counter(
            "monitor_deliveries_total",
            "Delivery outcomes, by channel and status: sent; failed (to be retried); deferred "
            "(held behind a failure without an attempt); dead (given up on).",
            ["channel", "status"],
            registry=on,
        )
        self.redeliveries = Counter(
            "monitor_deliveries_redelivered_total",
            "Deliveries claimed again after a claim that ended without an outcome (a worker "
            "killed, a send cancelled or timed out): alerts that may have been sent twice.",
            ["channel"],
            registry=on,
        )
        self.match_latency = Histogram(
            "monitor_match_latency_seconds",
            "Time to match one article against every rule.",
            buckets=MATCH_BUCKETS,
            registry=on,
        )
        self.alert_latency = Histogram(
            "monitor_publish_to_alert_seconds",
            "From an article's publication (when it was first stored, if it has no date) to its "
            "alert being sent, by channel.",
            ["channel"],
            buckets=ALERT_BUCKETS,
            registry=on,
        )
        self.rules = Gauge(
            "monitor_rules_loaded",
            "Rules in the rule set in use.",
            registry=on,
        )
        self.rules_reloaded_at = Gauge(
            "monitor_rules_last_reload_timestamp_seconds",
            "When the rule set in use was loaded (Unix time).",
            registry=on,
        )
        self.rules_reload_failures = Counter(
            "monitor_rules_reload_failures_total",
            "Rule reloads refused (invalid rules); the rules loaded before stay in use.",
            registry=on,
        )
        for outcome in FETCH_OUTCOMES:
            self.fetches.labels(outcome)  # shown as 0 before the first poll, not absent
        for kind in ("new", "updated"):
            self.articles.labels(kind)

    # -- sources ---------------------------------------------------------------------------

    def fetched(self, outcome: str) -> None:
        """A feed poll ended well: ``ok`` or ``not_modified``."""
        self.fetches.labels(outcome).inc()

    def fetch_failed(self, reason: str) -> None:
        """A feed poll failed with ``reason`` (folded by :func:`fetch_error_reason`)."""
        self.fetches.labels("error").inc()
        self.fetch_errors.labels(fetch_error_reason(reason)).inc()

    # -- pipeline --------------------------------------------------------------------------

    def ingested(self, new: int, updated: int) -> None:
        """A unit of articles was committed: ``new`` articles and ``updated`` new versions."""
        if new:
            self.articles.labels("new").inc(new)
        if updated:
            self.articles.labels("updated").inc(updated)

    def matched(self, rule_id: str, severity: str) -> None:
        """One match of ``rule_id`` was committed."""
        self.matches.labels(rule_id, severity).inc()

    # -- outbox ----------------------------------------------------------------------------

    def delivered(self, channel: str, status: str, count: int = 1) -> None:
        """``count`` deliveries of ``channel`` ended an attempt as ``status``: sent, failed,
        deferred or dead."""
        if count:
            self.deliveries.labels(channel, status).inc(count)

    def alerted(
        self, channel: str, published: datetime | None, stored: datetime | None, now: datetime
    ) -> None:
        """An alert went out through ``channel`` at ``now``: observe how long after its
        article's publication (``published``, else ``stored``: when it was first stored).
        A date in the future (a wrong clock at the publisher) counts as no delay."""
        since = published or stored
        if since is not None:
            self.alert_latency.labels(channel).observe(max(0.0, (now - since).total_seconds()))

    def redelivered(self, channel: str, count: int) -> None:
        """``count`` deliveries of ``channel`` were taken over from a claim without outcome."""
        if count:
            self.redeliveries.labels(channel).inc(count)

    # -- rules -----------------------------------------------------------------------------

    def rules_loaded(self, count: int, at: datetime | None = None) -> None:
        """A rule set of ``count`` rules is in use from ``at`` (now when None): at start-up,
        and after each reload that took effect."""
        self.rules.set(count)
        when = at.timestamp() if at is not None else time.time()
        self.rules_reloaded_at.set(when)

    def rules_reload_failed(self) -> None:
        """A reload was refused (its rules were invalid); the rules in use stay."""
        self.rules_reload_failures.inc()
