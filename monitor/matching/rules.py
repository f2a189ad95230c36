"""Compiled rules: what the loader produces from rule files and the engine consumes.

Frozen and validated: by the time a Rule exists, its actors are resolved, its query parsed and its
terms non-empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from monitor.matching.query import Node
from monitor.models import FIELDS, Severity


@dataclass(frozen=True, slots=True)
class TermSpec:
    """A keyword, alias or exclusion with its own options.

    ``case_sensitive`` compares the words' exact letters ("US" but not "us"); ``slop`` None means
    the rule's (keywords) or 0 (aliases and exclusions).
    """

    text: str
    case_sensitive: bool = False
    slop: int | None = None


Term = str | TermSpec
"""A plain string is a TermSpec with the defaults."""


def term_text(term: Term) -> str:
    return term if isinstance(term, str) else term.text


@dataclass(frozen=True, slots=True)
class Actor:
    """A named actor; any of ``aliases`` (which include the name) mentions it."""

    id: str
    name: str
    aliases: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One watch rule.

    It matches an article when every part it has holds: at least one alias of one of ``actors``
    (each alias an exact phrase), at least one of ``keywords`` (words in order, at most ``slop``
    other words between them in total, within one field), none of ``exclude`` (exact phrases),
    ``query`` (a Boolean expression), at least ``min_hits`` occurrences of its aliases and
    keywords, a source among ``sources`` and a language among ``languages``. A disabled rule never
    matches. ``notify`` None means the config's default channels; ``template`` None means the
    channel's template. ``fields`` are searched by every
    part; ``stem`` matches inflections with the Snowball stemmer of ``language``.
    """

    id: str
    name: str
    severity: Severity = Severity.MEDIUM
    actors: tuple[Actor, ...] = ()
    keywords: tuple[Term, ...] = ()
    exclude: tuple[Term, ...] = ()
    query: Node | None = None
    query_text: str | None = None
    slop: int = 3
    enabled: bool = True
    notify: tuple[str, ...] | None = None
    fields: tuple[str, ...] = FIELDS
    min_hits: int | None = None
    sources: tuple[str, ...] | None = None
    languages: tuple[str, ...] | None = None
    stem: bool = False
    language: str = "english"
    tags: tuple[str, ...] = ()
    min_sources: int | None = None
    """Alert once matches from this many distinct sources arrived within ``window``."""
    window: timedelta = timedelta(hours=6)
    throttle: timedelta | None = None
    """Matches within this long after an alert are sent as one digest at the window's end."""
    template: str | None = None
    """The message template name for this rule's alerts; wins over the channel's."""
    query_actors: tuple[Actor, ...] = ()
    """Actors the query names with ``@id``."""
    file: str = ""
    line: int = 0
