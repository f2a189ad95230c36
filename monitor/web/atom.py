"""Matches as an Atom 1.0 feed (RFC 4287), for people who follow alerts in a feed reader. Pure.

Each match is an entry: its id is ``urn:monitor:match:<id>`` (permanent, whatever address the
daemon is reached at), its title the alert's title line (``[CRITICAL] Rule: Article title``),
``updated`` when it matched, its ``alternate`` link the article itself when it has an http(s)
URL (else the dashboard's page of the article, which is always its ``related`` link), its
summary the plain-text snippet around the hits, and its categories the severity and the rule.

The document is built with lxml, which escapes every text; characters XML cannot carry at all
(control characters a feed may contain) are dropped first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from lxml import etree

from monitor.web.reader import MatchView

__all__ = ["ATOM", "CONTENT_TYPE", "matches_feed"]

ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml"

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _when(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def matches_feed(
    matches: Sequence[MatchView],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    page_url: str,
    article_url: Callable[[MatchView], str],
    updated: datetime,
) -> bytes:
    """The Atom document of ``matches`` (newest first). ``self_url``: this feed's address;
    ``page_url``: the dashboard's listing of the same matches; ``article_url``: the
    dashboard's page of a match's article; ``updated``: the feed's time when it has no entry."""
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})

    def add(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> None:
        values = {key: _text(value) for key, value in attrs.items()}
        child = etree.SubElement(parent, f"{{{ATOM}}}{name}", values)
        if text is not None:
            child.text = _text(text)

    add(feed, "id", feed_id)
    add(feed, "title", title)
    add(feed, "updated", _when(matches[0].matched_at if matches else updated))
    add(feed, "link", rel="self", type=CONTENT_TYPE, href=self_url)
    add(feed, "link", rel="alternate", type="text/html", href=page_url)
    author = etree.SubElement(feed, f"{{{ATOM}}}author")
    add(author, "name", "monitor")
    add(feed, "generator", "monitor")
    for match in matches:
        entry = etree.SubElement(feed, f"{{{ATOM}}}entry")
        add(entry, "id", f"urn:monitor:match:{match.id}")
        add(entry, "title", match.heading)
        add(entry, "updated", _when(match.matched_at))
        if match.published is not None:
            add(entry, "published", _when(match.published))
        source = etree.SubElement(entry, f"{{{ATOM}}}author")
        add(source, "name", match.source)
        page = article_url(match)
        add(entry, "link", rel="alternate", type="text/html", href=match.link or page)
        if match.link:
            add(entry, "link", rel="related", type="text/html", href=page)
        add(entry, "category", term=match.severity, label=f"severity {match.severity}")
        add(entry, "category", term=match.rule_id, label=match.rule_name)
        add(entry, "summary", match.snippet or match.title, type="text")
    return etree.tostring(feed, xml_declaration=True, encoding="utf-8")  # type: ignore[no-any-return]
