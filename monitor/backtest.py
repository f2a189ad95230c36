"""Backtest: run the current rules over stored articles and compare with the matches stored.

Two halves. The pure core (:class:`Checked` in, :func:`compare` -> :class:`Comparison`,
:func:`as_json`, :func:`as_text`) takes data and returns data: no database, no clock, no output.
The edge (:func:`scan`, :class:`ProgressBar`) reads the database in keyset pages and draws a
progress bar on a stream it is handed.

Nothing here writes to the database or notifies anyone. A stored match is "lost" when its rule no
longer matches the article, including when the rule was deleted or disabled; a match "now" is
"new" when no match of that rule is stored for the article (the rule is new, was changed, or did
not exist when the article arrived).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO, TypeVar

from monitor.matching.engine import Matcher
from monitor.store import repo
from monitor.store.db import Database

BATCH_SIZE = 500
"""Articles read per keyset page: each page is one short transaction."""

T = TypeVar("T")


# --- the pure core ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checked:
    """One stored article: the rules that match it now and the rule ids stored for it."""

    article_id: int
    title: str
    now: frozenset[str]
    stored: frozenset[str]


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """One rule's articles: matching now, stored, new (now, not stored), lost (stored, not now).

    ``known`` is False for a rule id that is stored but absent from the current rules.
    """

    rule_id: str
    now: int = 0
    stored: int = 0
    new: int = 0
    lost: int = 0
    known: bool = True


@dataclass(frozen=True, slots=True)
class Example:
    """One (article, rule) pair that is new or lost."""

    article_id: int
    title: str
    rule_id: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of a backtest; ``new`` and ``lost`` hold at most the requested number of
    examples, ``new_total`` and ``lost_total`` count them all."""

    articles: int
    rules: tuple[RuleCounts, ...]
    """Every current rule (even one matching nothing) and every stored-only rule id, by id."""
    new: tuple[Example, ...] = ()
    lost: tuple[Example, ...] = ()
    new_total: int = 0
    lost_total: int = 0


@dataclass
class _Tally:
    now: int = 0
    stored: int = 0
    new: int = 0
    lost: int = 0


@dataclass
class _Totals:
    articles: int = 0
    rules: dict[str, _Tally] = field(default_factory=dict)
    new: list[Example] = field(default_factory=list)
    lost: list[Example] = field(default_factory=list)
    new_total: int = 0
    lost_total: int = 0


def compare(checked: Iterable[Checked], rule_ids: Collection[str], limit: int = 20) -> Comparison:
    """Count, per rule, what matches now against what was stored, over ``checked``.

    ``rule_ids`` are the current rules: each is reported even when it matches nothing. Examples
    keep the order of ``checked`` (rules in id order within one article), at most ``limit`` each.
    ``checked`` is consumed once, lazily: memory does not grow with the number of articles.
    """
    totals = _Totals(rules={rule_id: _Tally() for rule_id in rule_ids})
    for item in checked:
        totals.articles += 1
        for rule_id in item.now:
            totals.rules.setdefault(rule_id, _Tally()).now += 1
        for rule_id in item.stored:
            totals.rules.setdefault(rule_id, _Tally()).stored += 1
        for rule_id in sorted(item.now - item.stored):
            totals.rules[rule_id].new += 1
            totals.new_total += 1
            if len(totals.new) < limit:
                totals.new.append(Example(item.article_id, item.title, rule_id))
        for rule_id in sorted(item.stored - item.now):
            totals.rules[rule_id].lost += 1
            totals.lost_total += 1
            if len(totals.lost) < limit:
                totals.lost.append(Example(item.article_id, item.title, rule_id))
    known = set(rule_ids)
    return Comparison(
        articles=totals.articles,
        rules=tuple(
            RuleCounts(rule_id, tally.now, tally.stored, tally.new, tally.lost, rule_id in known)
            for rule_id, tally in sorted(totals.rules.items())
        ),
        new=tuple(totals.new),
        lost=tuple(totals.lost),
        new_total=totals.new_total,
        lost_total=totals.lost_total,
    )


def as_json(result: Comparison, since: datetime) -> dict[str, Any]:
    """The ``--json`` document; ``since`` is the start of the window, as an ISO 8601 time."""
    return {
        "articles": result.articles,
        "since": since.isoformat(timespec="seconds"),
        "rules": [
            {"rule": r.rule_id, "now": r.now, "stored": r.stored, "new": r.new, "lost": r.lost}
            for r in result.rules
        ],
        "new": [_example_json(example) for example in result.new],
        "lost": [_example_json(example) for example in result.lost],
    }


def _example_json(example: Example) -> dict[str, Any]:
    return {"article": example.article_id, "title": example.title, "rule": example.rule_id}


UNKNOWN_RULE = "(not in rules)"


def as_text(result: Comparison, seconds: float) -> str:
    """A table by rule id, the examples, and a totals line; ``seconds`` is how long it took."""
    header = ("rule", "now", "stored", "new", "lost")
    table = [header] + [
        (
            r.rule_id if r.known else f"{r.rule_id} {UNKNOWN_RULE}",
            *(f"{n:,}" for n in (r.now, r.stored, r.new, r.lost)),
        )
        for r in result.rules
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    # The rule column is left-aligned, the counts right-aligned.
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    for label, examples, total in (
        ("new", result.new, result.new_total),
        ("lost", result.lost, result.lost_total),
    ):
        if not total:
            continue
        shown = f"{total:,}" if len(examples) == total else f"{len(examples):,} of {total:,}"
        lines += ["", f"{label} ({shown}):"]
        lines += [f"  #{e.article_id}  {e.rule_id}  {e.title}" for e in examples]
    lines += [
        "",
        f"{result.articles:,} articles checked in {seconds:.1f} s; "
        f"{result.new_total:,} new, {result.lost_total:,} lost",
    ]
    return "\n".join(lines)


def progress_line(done: int, total: int, seconds: float, label: str = "backtest") -> str:
    """``backtest  12,000/40,000 articles  30%  5,100/s``."""
    percent = min(100, done * 100 // total) if total else 100
    rate = done / seconds if seconds > 0 else 0.0
    return f"{label}  {done:,}/{total:,} articles  {percent:3d}%  {rate:,.0f}/s"


# --- the edge: database and terminal ------------------------------------------------------------


def scan(
    db: Database, matcher: Matcher, since: datetime, *, batch_size: int = BATCH_SIZE
) -> tuple[int, Iterator[Checked]]:
    """Count the articles first stored at or after ``since``, and check them lazily.

    Returns the count at once (for a progress bar) and an iterator that reads the articles newest
    first in keyset pages of ``batch_size``, each in its own short read-only transaction (on
    SQLite a snapshot that takes no write lock, so the daemon keeps storing meanwhile), and
    matches them outside it, so that no snapshot stays open for long.
    Articles stored after the count are not checked. A database the daemon never ran on has no
    tables; it counts as empty rather than being created, since a backtest writes nothing.
    """
    with db.reading() as session:
        if not repo.schema_exists(session):
            return 0, iter(())
        total, top = repo.count_articles_since(session, since)
    if top is None:
        return 0, iter(())
    return total, _checked(db, matcher, since, top + 1, batch_size)


def _checked(
    db: Database, matcher: Matcher, since: datetime, below: int, batch_size: int
) -> Iterator[Checked]:
    while True:
        with db.reading() as session:
            rows = repo.articles_since(session, since, below=below, limit=batch_size)
            stored = repo.stored_rule_ids(session, [row.id for row in rows if row.id is not None])
        for row in rows:
            assert row.id is not None
            now = frozenset(m.rule_id for m in matcher.match(repo.article_from_row(row)))
            yield Checked(row.id, row.title, now, frozenset(stored[row.id]))
        if len(rows) < batch_size:
            return
        last = rows[-1].id
        assert last is not None
        below = last


class ProgressBar:
    """A one-line progress bar redrawn in place on ``stream`` at most once per ``interval``.

    The caller decides whether to show one (only when the stream is a terminal); the line is
    erased when the tracked iterable ends, so what follows starts on a clean line.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.interval = interval
        self.clock = clock
        self._width = 0

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items`` unchanged, counting each one handed back as done."""
        started = last = self.clock()
        done = 0
        self._draw(progress_line(0, self.total, 0.0))
        try:
            for item in items:
                yield item
                done += 1
                now = self.clock()
                if now - last >= self.interval:
                    last = now
                    self._draw(progress_line(done, self.total, now - started))
        finally:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def _draw(self, line: str) -> None:
        # Pad to the widest line drawn so far, so a shorter line leaves no stale characters.
        self._width = max(self._width, len(line))
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
