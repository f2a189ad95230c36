"""The JSON API and the Atom feed on a real server, over a real SQLite file and the real
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import feedparser

from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import utcnow
from tests.web.conftest import (
    HTML_BODY,
    NOW,
    SCRIPT_TITLE,
    TOKEN,
    Batch,
    Site,
    article,
    seed,
    serving,
)


def by_title(matches: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(match["title"], match["rule"]) for match in matches]


async def test_matches_come_newest_first_with_excerpt_hits_and_deliveries(site: Site) -> None:
    """Every match is listed, newest first, with its article, excerpt, hits and deliveries."""
    body = await site.json("/api/matches")
    matches = body["matches"]
    assert len(matches) == 7
    assert body["limit"] == 50
    assert body["next_before"] is None
    times = [match["matched_at"] for match in matches]
    assert times == sorted(times, reverse=True)
    assert {match["title"] for match in matches[:2]} == {"Calm returns"}
    script = next(m for m in matches if m["title"] == SCRIPT_TITLE)
    assert script["severity"] == "critical"
    assert script["source"] == "wire"
    assert script["link"] == "https://example.org/riot?a=1&b=2"
    assert script["snippet"] == HTML_BODY
    assert [s["text"] for s in script["excerpt"] if s["hit"]] == ["riot"]
    assert {(h["field"], h["text"]) for h in script["hits"]} == {
        ("title", "Riot"),
        ("body", "riot"),
    }
    start = HTML_BODY.index("riot")
    in_body = next(hit for hit in script["hits"] if hit["field"] == "body")
    assert (in_body["start"], in_body["end"]) == (start, start + 4)
    assert script["deliveries"] == {"console": "pending"}
    calm = next(m for m in matches if m["rule"] == "calm")
    assert calm["deliveries"] == {"mail": "pending"}


FILTERS: list[tuple[str, set[tuple[str, str]]]] = [
    ("rule=calm", {("Calm returns", "calm"), ("Markets calm", "calm")}),
    (
        "severity=critical",
        {
            ("Calm returns", "riot"),
            (SCRIPT_TITLE, "riot"),
            ("Riot police deployed", "riot"),
        },
    ),
    (
        "severity=high,low",
        {
            ("Calm returns", "calm"),
            ("Markets calm", "calm"),
            ("ПРОТЕСТ у акимата", "protest"),
            ("Prices up", "protest"),
        },
    ),
    (
        "severity=high&severity=low&rule=protest",
        {("ПРОТЕСТ у акимата", "protest"), ("Prices up", "protest")},
    ),
    ("source=desk", {("Markets calm", "calm"), ("Riot police deployed", "riot")}),
    (
        "since=24h",
        {
            ("Calm returns", "calm"),
            ("Calm returns", "riot"),
            (SCRIPT_TITLE, "riot"),
            ("ПРОТЕСТ у акимата", "protest"),
            ("Prices up", "protest"),
        },
    ),
    (
        "until=1h&source=wire",
        {(SCRIPT_TITLE, "riot"), ("ПРОТЕСТ у акимата", "protest"), ("Prices up", "protest")},
    ),
    (
        f"since={(NOW - timedelta(days=4)).isoformat()}"
        f"&until={(NOW - timedelta(days=1)).date()}T00:00:00Z",
        {("Markets calm", "calm"), ("Riot police deployed", "riot")},
    ),
    ("rule=calm&severity=critical", set()),
]
"""Queries of the filter test and the (title, rule) of the matches each keeps."""


async def test_filters_by_rule_severity_source_and_time(site: Site) -> None:
    """Each filter, alone and combined, keeps exactly the matches it describes."""
    for query, expected in FILTERS:
        body = await site.json(f"/api/matches?{query}".replace("+", "%2B"))
        assert set(by_title(body["matches"])) == expected, query
        assert len(body["matches"]) == len(expected), query


SEARCHES: list[tuple[str, set[str]]] = [
    ("RIOT", {"Riot police deployed", SCRIPT_TITLE, "Calm returns"}),
    ("протест", {"ПРОТЕСТ у акимата"}),
    ("ЛЮДИ ВЫШЛИ", {"ПРОТЕСТ у акимата"}),
    ("<b>riot</b>", {SCRIPT_TITLE}),
    ("50%", {"Prices up"}),
    ("%", {"Prices up"}),
    ("_", set()),
    ("nowhere to be found", set()),
]
"""Search texts and the titles of the matches each finds."""


async def test_text_search_is_a_case_insensitive_substring(site: Site) -> None:
    """q finds matches whose article's title or text holds it in any case (Cyrillic too, on
    both backends); % and _ are plain characters."""
    for text, titles in SEARCHES:
        body = await site.json("/api/matches?" + urlencode({"q": text}))
        assert {match["title"] for match in body["matches"]} == titles, text


async def test_pages_follow_the_cursor_without_gaps_or_repeats(site: Site) -> None:
    """Walking pages of two by next_before (and by the next link) lists every match once, in
    order, even among matches stored at the same instant; total counts them all."""
    everything = [match["id"] for match in (await site.json("/api/matches"))["matches"]]
    seen: list[int] = []
    path = "/api/matches?limit=2&total=true"
    pages = 0
    while path:
        body = await site.json(path)
        assert body["total"] == 7
        assert len(body["matches"]) <= 2
        seen += [match["id"] for match in body["matches"]]
        path = body["next"]
        pages += 1
        if path is not None:
            assert body["next_before"] == body["matches"][-1]["id"]
            assert f"before={body['next_before']}" in path
    assert seen == everything
    assert pages == 4
    again = await site.json(f"/api/matches?limit=3&before={everything[2]}")
    assert [match["id"] for match in again["matches"]] == everything[3:6]


async def test_a_huge_limit_is_clamped_to_the_maximum_page(db: Database) -> None:
    """limit=1000000000 answers one page of 500 (the maximum) and a cursor to the rest."""
    bulk = [article(f"bulk-{n}", f"Calm day {n}", f"Day {n} was calm.") for n in range(510)]
    seed(db, (Batch(timedelta(hours=1), "wire", bulk),))
    async with serving(db) as site:
        body = await site.json("/api/matches?limit=1000000000&total=1")
        assert body["limit"] == 500
        assert len(body["matches"]) == 500
        assert body["total"] == 510
        rest = await site.json(body["next"])
        assert len(rest["matches"]) == 10
        assert rest["next"] is None


BAD: list[tuple[str, str]] = [
    ("/api/matches?limit=abc", "limit"),
    ("/api/matches?limit=0", "limit"),
    ("/api/matches?limit=-5", "limit"),
    ("/api/matches?limit=1e3", "limit"),
    ("/api/matches?limit=1&limit=2", "limit"),
    ("/api/matches?severity=urgent", "severity"),
    ("/api/matches?since=yesterday", "since"),
    ("/api/matches?until=2026-13-01", "until"),
    ("/api/matches?since=1h&until=2h", "since"),
    ("/api/matches?before=x", "before"),
    ("/api/matches?before=99999", "before"),
    ("/api/matches?before=99999999999999999999999", "before"),
    ("/api/matches?q=" + "x" * 201, "q"),
    ("/api/matches?total=maybe", "total"),
    ("/api/matches?limt=5", "limt"),
    ("/api/deliveries?status=lost", "status"),
    ("/api/deliveries?limit=many", "limit"),
    ("/api/deliveries?before=3", "before"),
    ("/feeds/matches.xml?severity=urgent", "severity"),
    ("/feeds/matches.xml?before=3", "before"),
]
"""Requests with a bad parameter, and the parameter's name."""


async def test_bad_parameters_get_a_400_naming_the_parameter(site: Site) -> None:
    """A parameter that does not parse, or that the endpoint does not take, is a 400 whose JSON
    error starts with its name."""
    for path, parameter in BAD:
        response = await site.get(path)
        assert response.status == 400, path
        body = await response.json()
        assert body["parameter"] == parameter, path
        assert body["error"].startswith(f"{parameter}: "), path


ENDPOINTS = (
    "/api/matches",
    "/api/articles/1",
    "/api/sources",
    "/api/rules",
    "/api/deliveries",
    "/api/unknown",
    "/feeds/matches.xml",
)


async def test_every_endpoint_answers_401_without_the_token(site: Site) -> None:
    """Without the token, with a wrong one, or with the token in the URL, the API and the feed
    answer 401 in JSON and say which scheme they take; /healthz needs no token."""
    for path in ENDPOINTS:
        for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
            response = await site.get(path, token=token)
            assert response.status == 401, (path, token)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "error" in await response.json()
        response = await site.get(f"{path}?token={TOKEN}", token=None)
        assert response.status == 401, path
    assert (await site.get("/healthz", token=None)).status == 200


async def test_an_article_lists_its_matches_with_every_hit(site: Site) -> None:
    """An article comes with its text and each of its matches with all their hits; an unknown
    id is a 404 in JSON."""
    listed = await site.json("/api/matches?q=city%20was%20calm")
    (article_id,) = {match["article"] for match in listed["matches"]}
    body = (await site.json(f"/api/articles/{article_id}"))["article"]
    assert body["title"] == "Calm returns"
    assert body["text"]["body"] == "The city was calm; a riot was feared."
    assert sorted(match["rule"] for match in body["matches"]) == ["calm", "riot"]
    for match in body["matches"]:
        assert match["hits"]
        for hit in match["hits"]:
            text = body["text"][hit["field"]]
            assert text[hit["start"] : hit["end"]] == hit["text"]
    for missing in ("999999", "99999999999", "abc"):
        response = await site.get(f"/api/articles/{missing}")
        assert response.status == 404
        assert (await response.json())["error"]


async def test_rules_show_where_they_are_defined_and_the_load_errors(site: Site) -> None:
    """/api/rules lists each rule with its file and line, whether it is enabled and its
    channels, and the problems of the last load."""
    body = await site.json("/api/rules")
    rules = {rule["id"]: rule for rule in body["rules"]}
    assert set(rules) == {"riot", "protest", "calm"}
    riot = rules["riot"]
    assert (riot["file"], riot["line"], riot["severity"], riot["enabled"]) == (
        "rules/unrest.yaml",
        3,
        "critical",
        True,
    )
    assert riot["channels"] is None
    assert rules["calm"]["channels"] == ["mail"]
    assert body["errors"] == [
        {"file": "rules/new.yaml", "line": 7, "message": "unknown actor 'nobody'"}
    ]
    assert body["loaded_at"] == NOW.isoformat()


async def test_sources_show_their_health(site: Site) -> None:
    """/api/sources gives each configured source's status; a failing one says why."""
    with site.db.session() as session:
        repo.record_poll(session, "desk", "folder", utcnow(), "folder is missing")
        repo.record_poll(session, "wire", "folder", utcnow(), None)
    body = await site.json("/api/sources")
    health = {source["id"]: source for source in body["sources"]}
    assert health["wire"]["status"] == "ok"
    assert health["desk"]["status"] == "failing"
    assert health["desk"]["error"] == "folder is missing"
    assert health["desk"]["failures"] == 1


async def test_deliveries_list_the_outbox_with_filters(site: Site) -> None:
    """/api/deliveries lists the outbox newest first, by status, channel and rule, bounded."""
    body = await site.json("/api/deliveries")
    assert len(body["deliveries"]) == 7
    assert {d["status"] for d in body["deliveries"]} == {"pending"}
    mail = await site.json("/api/deliveries?channel=mail")
    assert {(d["rule"], d["channel"]) for d in mail["deliveries"]} == {("calm", "mail")}
    assert len(mail["deliveries"]) == 2
    limited = await site.json("/api/deliveries?status=pending&rule=riot&limit=2")
    assert [d["rule"] for d in limited["deliveries"]] == ["riot", "riot"]
    assert (await site.json("/api/deliveries?status=dead"))["deliveries"] == []


async def test_the_atom_feed_is_valid_and_per_rule(site: Site) -> None:
    """/feeds/matches.xml parses as Atom 1.0 with feedparser; ?rule= keeps that rule's matches;
    each entry has an id, a title, a time, a link to the article and the snippet, escaped."""
    response = await site.get("/feeds/matches.xml?rule=riot")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(await response.read())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "monitor: matches of riot"
    entries = feed.entries
    assert len(entries) == 3
    assert all(entry.title.startswith("[CRITICAL] Riots: ") for entry in entries)
    ids = [entry.id for entry in entries]
    assert len(set(ids)) == 3
    assert all(entry.updated_parsed is not None for entry in entries)
    script = next(entry for entry in entries if "alert(1)" in entry.title)
    assert script.link == "https://example.org/riot?a=1&b=2"
    related = [link.href for link in script.links if link.rel == "related"]
    assert len(related) == 1
    assert related[0].startswith(site.url + "/articles/")
    assert "broke out near the square" in script.summary
    raw = (await response.read()).decode()
    assert "<script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    everything = feedparser.parse(await (await site.get("/feeds/matches.xml")).read())
    assert len(everything.entries) == 7
