"""The dashboard's pages as HTML over a real server: escaping, headers, the token cookie."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from yarl import URL

from monitor.models import Hit
from monitor.web.auth import COOKIE, CSP, cookie_value
from monitor.web.reader import marked
from tests.web.conftest import TOKEN, Site

PAGES = ("/", "/?severity=critical", "/sources", "/deliveries", "/rules")


async def test_every_page_escapes_what_comes_from_feeds(site: Site) -> None:
    """A <script> title and HTML in an article's text show as text: escaped, never markup; the
    hit inside the HTML is marked from its offsets."""
    for path in ("/", "/deliveries", "/?q=riot"):
        page = await (await site.get(path)).text()
        assert "<script" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Riot in the capital" in page, path
    index = await (await site.get("/")).text()
    assert "a &lt;b&gt;<mark>riot</mark>&lt;/b&gt; broke out" in index
    assert "<b>" not in index
    article_id = re.search(r'href="/articles/(\d+)">&lt;script&gt;', index)
    assert article_id is not None
    page = await (await site.get(f"/articles/{article_id[1]}")).text()
    assert "<script" not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; Riot in the capital · monitor</title>" in (
        page
    )
    assert '<a href="https://example.org/riot?a=1&amp;b=2" rel="noopener noreferrer">' in page


async def test_pages_carry_a_strict_csp_and_no_sniffing(site: Site) -> None:
    """Every answer, pages, API, errors and 401s alike, has the CSP, nosniff and no-referrer
    headers; pages are not stored by caches."""
    for path, token in [*((path, TOKEN) for path in PAGES), ("/nope", TOKEN), ("/", None)]:
        response = await site.get(path, token=token)
        headers = response.headers
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert headers["Cache-Control"] == "no-store", path
    assert (await site.get("/api/matches")).headers["Content-Security-Policy"] == CSP
    css = await site.get("/static/dashboard.css")
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "mark" in await css.text()


async def test_the_token_redirect_stays_on_this_server(site: Site) -> None:
    """A page asked for as //host?token= redirects to a path on this server, never to that
    host (a browser reads a Location of //host/ as another site)."""
    response = await site.client.get(
        URL(f"{site.url}//evil.example/?token={TOKEN}", encoded=True), allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/evil.example/"


async def test_the_token_in_the_url_once_sets_a_strict_cookie(site: Site) -> None:
    """?token= on a page answers a redirect to the same page without it, setting an HttpOnly,
    SameSite=Strict cookie that then opens the pages and the API; a wrong one is a 401."""
    assert (await site.get("/", token=None)).status == 401
    wrong = await site.get("/?token=nope&severity=critical", token=None)
    assert wrong.status == 401
    assert "Set-Cookie" not in wrong.headers
    response = await site.get(f"/?severity=critical&token={TOKEN}&rule=riot", token=None)
    assert response.status == 303
    assert response.headers["Location"] == "/?severity=critical&rule=riot"
    cookie = SimpleCookie(response.headers["Set-Cookie"])[COOKIE]
    assert cookie.value == cookie_value(TOKEN)
    assert TOKEN not in response.headers["Set-Cookie"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    jar = {COOKIE: cookie.value}
    for path in ("/?severity=critical", "/api/matches", "/feeds/matches.xml"):
        answer = await site.client.get(site.url + path, cookies=jar)
        assert answer.status == 200, path
    forged = await site.client.get(site.url + "/", cookies={COOKIE: TOKEN})
    assert forged.status == 401
    assert not cookie["secure"]
    proxied = await site.client.get(
        f"{site.url}/?token={TOKEN}",
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert SimpleCookie(proxied.headers["Set-Cookie"])[COOKIE]["secure"]


async def test_the_filters_and_pages_list_what_they_say(site: Site) -> None:
    """The severity filter lists only that severity, the article page lists every hit, a bad
    parameter is a 400 page naming it, and an unknown article a 404 page."""
    page = await (await site.get("/?severity=critical")).text()
    assert sorted(re.findall(r'class="severity severity-(\w+)"', page)) == ["critical"] * 3
    assert '<option value="critical" selected>' in page
    listed = await site.json("/api/matches?q=city%20was%20calm")
    article_id = listed["matches"][0]["article"]
    page = await (await site.get(f"/articles/{article_id}")).text()
    assert page.count('<tr class="hit">') == sum(len(m["hits"]) for m in listed["matches"])
    assert "The city was <mark>calm</mark>; a <mark>riot</mark> was feared." in page
    bad = await site.get("/?limit=lots")
    assert bad.status == 400
    assert "limit: must be a whole number" in await bad.text()
    missing = await site.get("/articles/424242")
    assert missing.status == 404
    assert "<h1>No such article</h1>" in await missing.text()


async def test_health_queue_and_rules_pages(site: Site) -> None:
    """The sources page lists every source, the deliveries page the outbox, the rules page the
    rules with their file and line and the last load's errors."""
    sources = await (await site.get("/sources")).text()
    assert sources.count('<tr class="source status-new">') == 2
    deliveries = await (await site.get("/deliveries?channel=mail")).text()
    assert deliveries.count('<tr class="delivery-row status-pending">') == 2
    rules = await (await site.get("/rules")).text()
    assert "<code>rules/unrest.yaml:3</code>" in rules
    assert rules.count("<td>default</td>") == 2  # riot and protest: the config's channels
    assert rules.count("<td>mail</td>") == 1
    assert "<code>rules/new.yaml:7</code>: unknown actor &#39;nobody&#39;" in rules


def test_marked_flags_the_hits_at_their_offsets_only() -> None:
    """Hits become marked segments at their stored offsets, overlapping ones merge, and a hit
    whose offsets point at other text is not marked; control characters are dropped."""
    text = "Riot\u202e police: a riot, riots."
    a_riot = text.index("a riot")
    hits = [
        Hit("riot", "body", 0, 4, "Riot"),
        Hit("riot", "body", a_riot + 2, a_riot + 6, "riot"),
        Hit("a riot", "body", a_riot, a_riot + 6, "a riot"),
        Hit("riots", "body", 2, 7, "riots"),  # stale offsets: not marked
    ]
    assert [(s.text, s.hit) for s in marked(text, hits)] == [
        ("Riot", True),
        (" police: ", False),
        ("a riot", True),
        (", riots.", False),
    ]
