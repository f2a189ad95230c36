"""Compiled rules: what the loader produces from rule files and the engine consumes.

Frozen and validated: by the time a Rule exists, its actors are resolved and its terms non-empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.models import Severity


@dataclass(frozen=True, slots=True)
class Actor:
    """A named actor; any of ``aliases`` (which include the name) mentions it."""

    id: str
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One watch rule.

    It matches an article when every part it has holds: at least one alias of one of ``actors``
    (each alias an exact phrase), at least one of ``keywords`` (words in order, at most ``slop``
    other words between them in total, within one field), and none of ``exclude`` (exact phrases).
    A disabled rule never matches. ``notify`` None means the config's default channels.
    """

    id: str
    name: str
    severity: Severity = Severity.MEDIUM
    actors: tuple[Actor, ...] = ()
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    slop: int = 3
    enabled: bool = True
    notify: tuple[str, ...] | None = None
    file: str = ""
    line: int = 0
