"""Feed sources end to end: a real local server with good feeds and every fault, the daemon's
feed round (fetch -> worker-process parse -> pipeline), and the state it keeps in the database."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import count
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.exc import OperationalError
from sqlmodel import col, func, select

from monitor.app import App, Daemon
from monitor.cli import main
from monitor.errors import ConfigError
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, FeedRow, MatchRow
from tests.sources.conftest import (
    FeedServer,
    gzip_bomb,
    item,
    redirect,
    rss,
    serve,
    status,
    trickle,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "documents"
LETHAL = (
    "Kazakh President Kassym-Jomart Tokayev ordered security forces to shoot protesters "
    "without warning."
)
WaitUntil = Callable[..., Awaitable[None]]


def write_config(tmp_path: Path, db_url: str, feeds: dict[str, str], extra: str = "") -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules", dirs_exist_ok=True)
    lines = [
        f"database: '{db_url}'",
        "rules: rules",
        "channels: [{id: console, url: 'console://'}]",
        "notify: [console]",
        "fetching: {timeout: 3s, parse_timeout: 5s, parsers: 1, max_body: 1048576}"
        if "fetching:" not in extra
        else "",
        "sources:" if feeds else "sources: []",
        *(
            f"  - {{id: {source_id}, type: feed, url: '{url}', allow_private: true}}"
            for source_id, url in feeds.items()
        ),
        extra,
    ]
    config = tmp_path / "monitor.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


async def run_once(config: Path) -> Daemon:
    daemon = Daemon(App.load(config))
    await daemon.run(once=True)
    return daemon


def feed_states(db_url: str) -> dict[str, FeedRow]:
    database = Database(db_url)
    try:
        with database.session() as session:
            return {row.source_id: row for row in session.exec(select(FeedRow)).all()}
    finally:
        database.dispose()


def count_rows(db_url: str, table: type, *where: object) -> int:
    database = Database(db_url)
    try:
        with database.session() as session:
            statement = select(func.count()).select_from(table)
            for condition in where:
                statement = statement.where(condition)  # type: ignore[arg-type]
            return int(session.exec(statement).one())
    finally:
        database.dispose()


def claims_expired(db_url: str) -> bool:
    """True once feeds were claimed and every claim's lease has ended."""
    now = datetime.now(UTC)
    leases = [state.claimed_until for state in feed_states(db_url).values()]
    return any(leases) and all(lease is None or lease <= now for lease in leases)


def stored_articles(db_url: str) -> int:
    """Articles stored so far; 0 while the daemon has not created its schema yet."""
    try:
        return count_rows(db_url, ArticleRow)
    except OperationalError:
        return 0


def churning_guid() -> Callable[[web.Request], Awaitable[web.Response]]:
    """The same entry with a new GUID on every fetch."""
    numbers = count()

    async def handler(request: web.Request) -> web.Response:
        entry = item(7, "Same text every time.", guid=f"churn-{next(numbers)}")
        return serve(request, rss("Churn", [entry]))

    return handler


def serve_good_and_hostile_feeds(server: FeedServer) -> dict[str, str]:
    """Two good feeds, a feed whose GUID churns, and one feed per fault; source id -> path."""
    server.documents["/good.xml"] = rss("Desk", [item(1, LETHAL), item(2)])
    long_ago = format_datetime(datetime.now(UTC) - timedelta(days=30), usegmt=True)
    server.documents["/other.xml"] = rss("Other", [item(3, "Weather: sunny.", pubDate=long_ago)])
    server.documents["/html"] = (FIXTURES / "page.html").read_bytes()
    server.documents["/laughs.xml"] = (FIXTURES / "billion_laughs.xml").read_bytes()
    server.documents["/quadratic.rss"] = (FIXTURES / "quadratic_utf16.rss").read_bytes()
    bomb = gzip_bomb(50 * 1024 * 1024)

    async def bomb_handler(_request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    server.routes["/bomb.xml"] = bomb_handler
    server.routes["/loop"] = redirect("/loop2")
    server.routes["/loop2"] = redirect("/loop")
    server.routes["/slow.xml"] = trickle
    server.routes["/busy.xml"] = status(429, {"Retry-After": "3600"})
    server.routes["/gone.xml"] = status(410)
    server.routes["/broken.xml"] = status(500)
    server.routes["/churn.xml"] = churning_guid()
    whole = rss("Cut", [item(20, "Complete entry."), item(21, "This entry is cut off " * 20)])
    server.documents["/truncated.xml"] = whole[: whole.index(b"cut off") + 30]
    server.documents["/bytes.xml"] = rss("Bytes", [item(22, "Valid text.")]).replace(
        b"Valid text.", b"Valid \xff\xfe text."
    )
    server.documents["/charset.xml"] = rss("Charset", [item(23, "Almaty, caf\u00e9")]).replace(
        b'encoding="utf-8"', b'encoding="iso-8859-1"'
    )
    return {
        "good": "/good.xml",
        "other": "/other.xml",
        "html": "/html",
        "laughs": "/laughs.xml",
        "quadratic": "/quadratic.rss",
        "bomb": "/bomb.xml",
        "loop": "/loop",
        "slow": "/slow.xml",
        "busy": "/busy.xml",
        "gone": "/gone.xml",
        "broken": "/broken.xml",
        "churn": "/churn.xml",
        "truncated": "/truncated.xml",
        "bytes": "/bytes.xml",
        "charset": "/charset.xml",
    }


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_round_with_good_and_hostile_feeds(
    feed_server: FeedServer,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Good feeds are stored and matched while each hostile one fails with its own reason; a
    second round revalidates with 304s and stores nothing twice; 410 stops polling; Retry-After
    and backoff are honoured; `monitor sources` shows each feed's health and reason."""
    db_url = (
        f"sqlite:///{tmp_path / 'monitor.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_schema_url")
    )
    server = feed_server
    paths = serve_good_and_hostile_feeds(server)
    config = write_config(tmp_path, db_url, {k: server.url(v) for k, v in paths.items()})
    started = datetime.now(UTC)

    await run_once(config)

    states = feed_states(db_url)
    reasons = {source_id: state.error_reason for source_id, state in states.items()}
    assert reasons == {
        "good": None,
        "other": None,
        "churn": None,
        "truncated": None,
        "bytes": None,
        "charset": None,
        "html": "not_a_feed",
        "laughs": "parse_error",
        "quadratic": "parse_error",
        "bomb": "too_large",
        "loop": "redirect_loop",
        "slow": "timeout",
        "busy": "rate_limited",
        "gone": "gone",
        "broken": "http_500",
    }
    assert "not a feed" in (states["html"].last_error or "")
    assert states["good"].etag
    assert states["good"].items_seen == 2
    assert states["gone"].disabled
    assert states["gone"].next_check_at is None
    assert states["busy"].next_check_at >= started + timedelta(minutes=59)  # type: ignore[operator]
    assert states["broken"].consecutive_failures == 1
    assert states["broken"].next_check_at > started  # type: ignore[operator]
    # good: 2, other: 1, churn: 1; the complete entry of the truncated feed (the cut one is
    # not stored half); the entries with invalid bytes and with a wrong charset, decoded.
    assert count_rows(db_url, ArticleRow) == 7
    lethal = count_rows(db_url, MatchRow, col(MatchRow.rule_id) == "kz-lethal-force")
    assert lethal == 1
    deliveries = count_rows(db_url, DeliveryRow)

    capsys.readouterr()  # the alerts the console channel printed
    assert main(["--config", str(config), "sources"]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert table["good"].split()[2] == "ok"
    assert table["other"].split()[2] == "stale"  # nothing new for 30 days
    assert "failing" in table["html"]
    assert "not_a_feed: not a feed" in table["html"]
    assert "disabled" in table["gone"]
    assert "410" in table["gone"]

    server.statuses.clear()
    await run_once(config)

    answered = dict(server.statuses)
    assert answered["/good.xml"] == 304
    assert answered["/other.xml"] == 304
    for path in ("/gone.xml", "/busy.xml", "/broken.xml", "/html"):
        assert path not in answered  # disabled, or backing off
    assert count_rows(db_url, ArticleRow) == 7  # the churned GUID is the same entry
    assert count_rows(db_url, DeliveryRow) == deliveries
    again = feed_states(db_url)
    assert again["good"].consecutive_failures == 0
    assert again["good"].last_status == 304
    assert again["html"].consecutive_failures == 1


async def test_permanent_redirect_moves_the_feed_only_after_a_valid_feed(
    feed_server: FeedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 301 to a working feed updates the stored URL (logged with the token of a signed
    target masked); a 301 to a page that is not a feed does not, and the configured URL is
    kept."""
    caplog.set_level(logging.INFO)
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    feed_server.documents["/new.xml"] = rss("Moved", [item(1)])
    feed_server.documents["/page"] = b"<html><body>Not a feed</body></html>"
    feed_server.routes["/old.xml"] = redirect("/new.xml?token=signed-7a6b5c", 301)
    feed_server.routes["/bad.xml"] = redirect("/page", 301)
    config = write_config(
        tmp_path,
        db_url,
        {"moved": feed_server.url("/old.xml"), "bad": feed_server.url("/bad.xml")},
    )
    await run_once(config)
    states = feed_states(db_url)
    assert states["moved"].current_url == feed_server.url("/new.xml?token=signed-7a6b5c")
    moved = [r.getMessage() for r in caplog.records if "moved permanently" in r.getMessage()]
    assert moved == [
        f"feed moved moved permanently; now reading {feed_server.url('/new.xml')}?token=***"
    ]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]
    leaks = [message for message in ours if "signed-7a6b5c" in message]
    assert leaks == []
    assert states["bad"].current_url is None
    assert states["bad"].error_reason == "not_a_feed"
    feed_server.hits.clear()
    await run_once(config)
    assert "/old.xml" not in feed_server.hits
    assert feed_server.hits["/new.xml"] == 1


async def test_an_updated_entry_is_rematched_but_alerts_once(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """Same GUID, new text: a new version is stored and matched, and the rule that alerted for
    the first version does not alert again."""
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    feed_server.documents["/feed.xml"] = rss("Desk", [item(1, LETHAL)])
    config = write_config(tmp_path, db_url, {"desk": feed_server.url("/feed.xml")})
    await run_once(config)
    feed_server.documents["/feed.xml"] = rss("Desk", [item(1, LETHAL + " Updated at noon.")])
    await run_once(config)
    assert count_rows(db_url, ArticleRow) == 2
    assert count_rows(db_url, ArticleRow, col(ArticleRow.current)) == 1
    assert count_rows(db_url, MatchRow, col(MatchRow.rule_id) == "kz-lethal-force") == 1


async def test_the_daemon_dispatches_due_feeds_and_stops(
    feed_server: FeedServer, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """Running as a service, the dispatcher polls every feed that is due, then waits for the
    next check; stopping it ends the run."""
    import asyncio

    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    for number in range(5):
        feed_server.documents[f"/f{number}.xml"] = rss("Desk", [item(number * 10)])
    config = write_config(
        tmp_path, db_url, {f"f{n}": feed_server.url(f"/f{n}.xml") for n in range(5)}
    )
    daemon = Daemon(App.load(config))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: stored_articles(db_url) == 5, timeout=20)
        states = feed_states(db_url)
        assert all(s.next_check_at and s.next_check_at > datetime.now(UTC) for s in states.values())
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=15)
    assert all(feed_server.hits[f"/f{n}.xml"] == 1 for n in range(5))


async def test_feeds_from_an_opml_file(feed_server: FeedServer, tmp_path: Path) -> None:
    """Every outline with an xmlUrl becomes a feed with a stable id, its folders as tags; a feed
    the config lists already is not added twice."""
    feed_server.documents["/a.xml"] = rss("A", [item(1)])
    feed_server.documents["/b.xml"] = rss("B", [item(2)])
    (tmp_path / "subs.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>Desk</title></head><body>'
        f'<outline text="Asia"><outline text="A" xmlUrl="{feed_server.url("/a.xml")}"/></outline>'
        f'<outline text="B" xmlUrl="{feed_server.url("/b.xml")}"/>'
        '<outline text="folder only"/></body></opml>',
        encoding="utf-8",
    )
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = write_config(
        tmp_path,
        db_url,
        {"b": feed_server.url("/b.xml")},
        extra="feeds_opml: subs.opml\nfetching: {allow_private: true}",
    )
    app = App.load(config)
    feeds = [s for s in app.settings.sources if s.type == "feed"]
    assert next(s.id for s in feeds) == "b"
    assert len(feeds) == 2
    opml_feed = feeds[1]
    assert opml_feed.id.startswith("127.0.0.1-")
    assert opml_feed.tags == ("Asia",)
    assert App.load(config).settings.sources[1].id == opml_feed.id  # stable across loads
    await run_once(config)
    database = Database(db_url)
    try:
        with database.session() as session:
            tags = {row.source_id: row.tags for row in session.exec(select(ArticleRow)).all()}
    finally:
        database.dispose()
    assert tags == {"b": [], opml_feed.id: ["Asia"]}


def test_opml_problems_name_the_file_and_line(tmp_path: Path) -> None:
    """An outline whose URL is not http(s) is reported at its line of the OPML file; a file that
    is not OPML says so; one that declares entities is refused, in UTF-16 too."""
    (tmp_path / "subs.opml").write_text(
        '<?xml version="1.0"?>\n<opml version="2.0"><body>\n'
        '<outline text="ok" xmlUrl="https://example.org/feed"/>\n'
        '<outline text="bad" xmlUrl="file:///etc/passwd"/>\n'
        "</body></opml>\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, "sqlite:///x.db", {}, extra="feeds_opml: subs.opml")
    with pytest.raises(ConfigError) as caught:
        App.load(config)
    assert str(caught.value).startswith(f"{tmp_path / 'subs.opml'}:4: feed 'file:///etc/passwd'")
    # A refused URL is quoted with its credentials masked.
    (tmp_path / "subs.opml").write_text(
        '<?xml version="1.0"?>\n<opml version="2.0"><body>\n'
        '<outline text="bad" xmlUrl="ftp://u:opml-pw-77@example.org/f?token=opml-tok-88"/>\n'
        "</body></opml>\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        App.load(config)
    assert "feed 'ftp://u:***@example.org/f?token=***'" in str(caught.value)
    assert "opml-pw-77" not in str(caught.value)
    (tmp_path / "subs.opml").write_text("<html><body/></html>", encoding="utf-8")
    with pytest.raises(ConfigError, match="not OPML"):
        App.load(config)
    laughs = '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>'
    (tmp_path / "subs.opml").write_text(laughs, encoding="utf-16")
    with pytest.raises(ConfigError, match="declares XML entities"):
        App.load(config)


async def test_kill_during_a_round_then_restart_loses_nothing_and_alerts_once(
    feed_server: FeedServer, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """kill -9 in the middle of a round of 30 feeds: once the dead process's claims have run out,
    a restart stores every entry exactly once, every match exists once with one delivery per
    channel, and no alert is printed twice except at most the one in flight when the process
    died."""
    import asyncio
    import os
    import signal
    import sys

    feeds = 30

    def document(feed: int) -> bytes:
        entries = [
            item(n, f"Feed {feed} entry {n}. " + (LETHAL if n % 5 == 0 else "Calm day."))
            | {
                "guid": f"f{feed}-{n}",
                "title": f"Feed {feed} story {n}",
                "link": f"https://example.org/{feed}/{n}",
            }
            for n in range(10)
        ]
        return rss(f"Feed {feed}", entries)

    bodies = {f"/f{n}.xml": document(n) for n in range(feeds)}

    # A third of the feeds answer only after the kill, so the round is certainly unfinished when
    # the process dies; the rest answer at once.
    released = asyncio.Event()
    held = {f"/f{n}.xml" for n in range(0, feeds, 3)}

    async def answer(request: web.Request) -> web.Response:
        if request.path in held:
            await released.wait()
        return serve(request, bodies[request.path])

    for path in bodies:
        feed_server.routes[path] = answer
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = write_config(
        tmp_path, db_url, {f"f{n}": feed_server.url(f"/f{n}.xml") for n in range(feeds)}
    )
    # The held feeds must still be in flight when the process is killed (their timeout must
    # outlast a slow start), and their claims then run out (the lease, 15 s) before the restart.
    # Alerts go one at a time, never as a burst digest: a kill in the middle of a digest would
    # leave all of its alerts leased, not just the one in flight.
    config.write_text(
        config.read_text(encoding="utf-8")
        .replace(
            "fetching: {timeout: 3s, parse_timeout: 5s, parsers: 1,",
            "fetching: {timeout: 10s, connect_timeout: 1s, parse_timeout: 3s, lease: 15s, "
            "parsers: 1, per_host: 50,",
        )
        .replace("url: 'console://'}", "url: 'console://', burst: 10000}"),
        encoding="utf-8",
    )
    assert all(part in config.read_text() for part in ("lease: 15s", "burst: 10000"))
    command = [sys.executable, "-m", "monitor", "--config", str(config), "run"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )

    def succeeded() -> int:
        try:
            return sum(1 for s in feed_states(db_url).values() if s.last_success_at)
        except OperationalError:
            return 0

    try:
        await wait_until(lambda: succeeded() >= 5, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        out_first, _ = await first.communicate()
        released.set()
    assert succeeded() <= feeds - len(held)  # the held feeds were in flight when it died

    # The feeds in flight stay claimed by the dead process until its lease ends.
    await wait_until(lambda: claims_expired(db_url), timeout=40)

    second = await asyncio.create_subprocess_exec(
        *command[:-1], "run", "--once", stdout=asyncio.subprocess.PIPE, env=env
    )
    out_second, _ = await asyncio.wait_for(second.communicate(), timeout=120)
    assert second.returncode == 0

    assert succeeded() == feeds
    assert count_rows(db_url, ArticleRow) == feeds * 10
    lethal_entries = feeds * 2
    assert count_rows(db_url, MatchRow, col(MatchRow.rule_id) == "kz-lethal-force") == (
        lethal_entries
    )
    # One channel: one delivery per story (a rewrite of a story is folded into its alert).
    matches = count_rows(db_url, MatchRow, col(MatchRow.story_of).is_(None))
    assert count_rows(db_url, DeliveryRow) == matches
    # The one delivery claimed when the process died stays leased (2 minutes) and is sent after
    # that; every other one is sent already.
    sent = count_rows(db_url, DeliveryRow, col(DeliveryRow.status) == "sent")
    assert count_rows(db_url, DeliveryRow, col(DeliveryRow.status) == "pending") == matches - sent
    assert matches - sent <= 1
    printed = [
        line
        for line in (out_first + out_second).decode("utf-8", "replace").splitlines()
        if line.startswith("[") and ": Feed " in line  # an alert's first line: rule and title
    ]
    assert len(printed) - len(set(printed)) <= 1
    assert len(set(printed)) >= sent


async def test_full_text_reads_the_page_of_each_new_summary_only_entry(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """With full_text, an entry that has only a summary gets its page's main text as body
    (navigation and footer left out), so rules match what the page says; a page that fails
    leaves the entry as it was, and a known entry's page is not fetched again."""
    page = (
        "<html><head><title>Story</title></head><body><nav>Home | World | Sport</nav>"
        "<article><h1>Crackdown</h1><p>" + LETHAL + " Officials confirmed the order on Friday "
        "in Almaty, where protests continued.</p><p>Witnesses described troops in the central "
        "square and a curfew after dark.</p></article><footer>Copyright</footer></body></html>"
    ).encode()
    feed_server.documents["/page/1"] = page
    feed_server.routes["/page/2"] = status(500)
    entries = [
        item(1, "A short teaser.", link=feed_server.url("/page/1")),
        item(2, "Another teaser.", link=feed_server.url("/page/2")),
    ]
    feed_server.documents["/feed.xml"] = rss("Desk", entries)
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = write_config(tmp_path, db_url, {"desk": feed_server.url("/feed.xml")})
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "allow_private: true}", "allow_private: true, full_text: true}"
        ),
        encoding="utf-8",
    )
    await run_once(config)
    database = Database(db_url)
    try:
        with database.session() as session:
            rows = {row.title: row for row in session.exec(select(ArticleRow)).all()}
    finally:
        database.dispose()
    assert rows["Story 1"].body.startswith("Crackdown\n\n" + LETHAL)
    assert "Home | World" not in rows["Story 1"].body
    assert "Copyright" not in rows["Story 1"].body
    assert rows["Story 1"].summary == "A short teaser."
    assert rows["Story 2"].body == ""
    assert count_rows(db_url, MatchRow, col(MatchRow.rule_id) == "kz-lethal-force") == 1
    feed_server.documents["/feed.xml"] += b" "  # a changed document, the same entries
    await run_once(config)
    assert feed_server.hits["/page/1"] == 1
    assert count_rows(db_url, ArticleRow) == 2  # kept as they were: no new versions


async def test_relative_links_resolve_against_the_feed_url(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """An entry's relative link is stored as an absolute URL on the feed's host."""
    feed_server.documents["/news/feed.xml"] = rss("Desk", [item(1, link="story/1")])
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = write_config(tmp_path, db_url, {"desk": feed_server.url("/news/feed.xml")})
    await run_once(config)
    database = Database(db_url)
    try:
        with database.session() as session:
            urls = [row.url for row in session.exec(select(ArticleRow)).all()]
    finally:
        database.dispose()
    assert urls == [feed_server.url("/news/story/1")]


async def test_feed_credentials_never_show_in_logs_or_health(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password in a feed URL and a token in its headers reach the server, but not the logs
    (JSON, with every field, at DEBUG), the stored error or `monitor sources`."""
    import io
    import logging

    from monitor.logs import configure_logging

    feed_server.routes["/private.xml"] = status(500)
    feed_server.routes["/token.xml"] = status(500)
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    url = feed_server.url("/private.xml").replace("http://", "http://desk:s3cr3t-pass@")
    config = write_config(
        tmp_path, db_url, {"private": url, "token": feed_server.url("/token.xml")}
    )
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "token.xml', allow_private: true}",
            "token.xml', allow_private: true, headers: {Authorization: 'Bearer tok-abcdef123'}}",
        ),
        encoding="utf-8",
    )
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    logs = io.StringIO()
    configure_logging("DEBUG", "json", stream=logs)
    try:
        await run_once(config)
    finally:
        for handler in [h for h in root.handlers if h not in saved[1]]:
            root.removeHandler(handler)
        root.setLevel(saved[0])
    assert main(["--config", str(config), "sources", "--json"]) == 0
    assert feed_server.headers["/token.xml"]["Authorization"] == "Bearer tok-abcdef123"
    assert feed_server.headers["/private.xml"]["Authorization"].startswith("Basic ")
    states = feed_states(db_url)
    errors = f"{states['private'].last_error} {states['token'].last_error}"
    shown = logs.getvalue() + capsys.readouterr().out + errors
    assert "HTTP 500" in shown
    assert '"feed_url"' in logs.getvalue()  # the field that carries the URL was logged
    assert "s3cr3t-pass" not in shown
    assert "tok-abcdef123" not in shown


async def test_a_backlog_is_dispatched_as_polls_finish_not_tick_by_tick(
    feed_server: FeedServer, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """With room for two polls at a time, eight due feeds are all read within seconds: each
    finished poll makes the dispatcher select more, instead of waiting for its next tick (four
    ticks of five seconds)."""
    import asyncio

    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    for number in range(8):
        feed_server.documents[f"/b{number}.xml"] = rss("Desk", [item(number * 10)])
    config = write_config(
        tmp_path,
        db_url,
        {f"b{n}": feed_server.url(f"/b{n}.xml") for n in range(8)},
        extra="fetching: {concurrency: 1, parsers: 1}",
    )
    daemon = Daemon(App.load(config))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: stored_articles(db_url) == 8, timeout=12)
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=15)
    assert all(feed_server.hits[f"/b{n}.xml"] == 1 for n in range(8))
