"""OPML subscription lists -> feed sources, so a desk can bring its subscriptions as they are.

Every ``<outline>`` with an ``xmlUrl`` is a feed. Its source id is derived from the URL (the host
and a short digest), so it stays the same when the file is exported again in another order or with
other titles; the folders an outline sits in become its tags. An outline whose URL is not http(s)
is a problem at its line; so is a file that is not OPML. A DOCTYPE that declares entities is
refused, as for feeds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from monitor.documents.feedfile import declares_entities
from monitor.errors import ConfigError, Problem
from monitor.yamlfile import read_regular

_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def source_id(url: str) -> str:
    """A stable, readable source id for a feed URL: ``host-digest``."""
    host = _NOT_ID.sub("-", (urlsplit(url).hostname or "feed").lower()).strip("-.") or "feed"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return f"{host[:50]}-{digest}"


@dataclass(frozen=True, slots=True)
class Outline:
    """One feed of an OPML file: its URL, its folders (outermost first) and its line."""

    url: str
    tags: tuple[str, ...]
    line: int

    @property
    def source_id(self) -> str:
        return source_id(self.url)


def read_opml(path: Path) -> list[Outline]:
    """The feeds listed in the OPML file at ``path``, each once; ConfigError when the file
    cannot be read or is not OPML. (The config loader validates each URL at its line.)"""
    shown = str(path)
    try:
        data = read_regular(path)  # a FIFO would block the config loader
    except OSError as exc:
        raise ConfigError([Problem(shown, 0, f"cannot read OPML file: {exc.strerror}")]) from None
    if declares_entities(data):
        raise ConfigError([Problem(shown, 0, "OPML declares XML entities (DOCTYPE), refused")])
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root: Any = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 0
        raise ConfigError([Problem(shown, line, f"not valid OPML: {exc.msg}")]) from None
    if root.tag != "opml":
        raise ConfigError([Problem(shown, root.sourceline or 0, "not OPML: no <opml> root")])
    feeds: list[Outline] = []
    seen: set[str] = set()
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if not url:
            continue
        line = outline.sourceline or 0
        folders = [
            (parent.get("text") or parent.get("title") or "").strip()
            for parent in outline.iterancestors("outline")
        ]
        feed = Outline(url, tuple(tag for tag in reversed(folders) if tag), line)
        if feed.source_id not in seen:  # the same feed in two folders is one feed
            seen.add(feed.source_id)
            feeds.append(feed)
    return feeds
