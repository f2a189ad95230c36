"""The operator commands: `monitor deliveries`, `deliveries retry` and `notify-test`.

The listing and retries run on a real SQLite file and the real PostgreSQL (the ``db`` fixture);
notify-test sends through Apprise's own slack:// plugin to an aiohttp stand-in on 127.0.0.1 and
through its mailto:// plugin to a real aiosmtpd server. Every test checks that no secret of a
channel URL reaches the output.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from apprise.plugins.slack import NotifySlack
from sqlmodel import select

from monitor.cli import main
from monitor.errors import DeliveryError
from monitor.notify.outbox import Outbox
from monitor.notify.testing import FakeChannel
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow, utcnow
from tests.conftest import listening
from tests.notify.conftest import SmtpServer, free_port, smtp_serving

SMTP_USER = "desk"
SMTP_PASSWORD = "s3cretSmtpPassw0rd"
SLACK_TOKENS = ("T1234ABCD", "B5678EFGH", "abcdefghijklmnopqrstuvwx")
SLACK_URL = "slack://T1234ABCD/B5678EFGH/abcdefghijklmnopqrstuvwx/#desk"
SECRETS = (SMTP_PASSWORD, *SLACK_TOKENS)
HIT = {"term": "shoot", "field": "title", "start": 8, "end": 13, "text": "shoot", "kind": "keyword"}


def mail_url(port: int) -> str:
    return (
        f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
        "?from=monitor@example.org&to=desk@example.org&mode=insecure"
    )


def write_config(folder: Path, database: str, channels: dict[str, str]) -> str:
    """A config file with ``database`` and ``channels`` (id -> URL); returns its path."""
    lines = [f"database: {json.dumps(database)}", "channels:"]
    lines += [f"  - id: {cid}\n    url: {json.dumps(url)}" for cid, url in channels.items()]
    path = folder / "monitor.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# --------------------------------------------------------------------------------------------
# A database with deliveries in each state

_articles = 0


@dataclass
class Stored:
    db: Database
    config: str


@pytest.fixture
def stored(db: Database, db_url: str, tmp_path: Path) -> Stored:
    """The ``db`` database behind a config with the channels console, desk and mail."""
    config = write_config(
        tmp_path,
        db_url,
        {"console": "console://", "desk": "console://", "mail": mail_url(1)},
    )
    return Stored(db, config)


def add(
    db: Database,
    channel: str,
    status: str,
    *,
    created: datetime,
    rule: str = "lethal-force",
    title: str = "Troops shoot protesters",
    attempts: int = 0,
    next_attempt_at: datetime | None = None,
    last_error: str | None = None,
    sent_at: datetime | None = None,
) -> int:
    """Store an article, its match for ``rule`` and one delivery in ``status``; its id."""
    global _articles  # noqa: PLW0603 (a unique article key per call, across tests)
    _articles += 1
    with db.session() as session:
        article = ArticleRow(
            source_id="wire",
            key=f"a{_articles}",
            content_hash=f"{_articles:064x}",
            title=title,
            url=f"https://example.org/news/{_articles}",
            created_at=created,
            updated_at=created,
        )
        session.add(article)
        session.flush()
        assert article.id is not None
        match = MatchRow(
            article_id=article.id,
            rule_id=rule,
            rule_name=rule,
            severity="critical",
            hits=[HIT],
            created_at=created,
        )
        session.add(match)
        session.flush()
        assert match.id is not None
        delivery = DeliveryRow(
            match_id=match.id,
            channel=channel,
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at if next_attempt_at is not None else created,
            last_error=last_error,
            sent_at=sent_at,
            created_at=created,
        )
        session.add(delivery)
        session.flush()
        assert delivery.id is not None
        return delivery.id


def row(db: Database, delivery_id: int) -> DeliveryRow:
    with db.session() as session:
        found = session.exec(select(DeliveryRow).where(DeliveryRow.id == delivery_id)).one()
        session.expunge(found)
        return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert_no_secrets(out + err)
    return status, out, err


def three_states(db: Database) -> dict[str, int]:
    """One sent, one failing (pending) and one dead delivery, created a minute apart."""
    now = utcnow()
    return {
        "sent": add(
            db,
            "console",
            "sent",
            created=now - timedelta(minutes=3),
            attempts=1,
            sent_at=now - timedelta(minutes=3),
        ),
        "pending": add(
            db,
            "desk",
            "pending",
            created=now - timedelta(minutes=2),
            rule="troops-abroad",
            attempts=2,
            next_attempt_at=now + timedelta(minutes=10),
            last_error="channel 'desk': HTTP 500 from the service",
        ),
        "dead": add(
            db,
            "mail",
            "dead",
            created=now - timedelta(minutes=1),
            title="A very long title " * 10,
            attempts=9,
            # Stored before the secret was known: shown redacted all the same.
            last_error=f"channel 'mail': login {SMTP_USER}:{SMTP_PASSWORD} refused",
        ),
    }


# --------------------------------------------------------------------------------------------
# monitor deliveries


def test_deliveries_table_lists_every_state_newest_first_redacted(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has a header and one line per delivery, newest first, with the status, tries,
    rule, severity, a cut title, the link and the last error with its secrets masked."""
    ids = three_states(stored.db)
    status, out, err = run(capsys, "--config", stored.config, "deliveries")
    assert status == 0, err
    header, *lines = out.splitlines()
    assert header.split()[:6] == ["ID", "CHANNEL", "STATUS", "TRIES", "NEXT", "SENT"]
    assert [line.split()[0] for line in lines] == [
        str(ids["dead"]),
        str(ids["pending"]),
        str(ids["sent"]),
    ]
    dead, pending, sent = lines
    assert dead.split()[1:4] == ["mail", "dead", "9"]
    assert "login desk:*** refused" in dead
    assert "A very long title A very long" in dead
    assert ("A very long title " * 4) not in dead  # cut to a width
    assert pending.split()[1:5] == ["desk", "pending", "2", "in"]
    assert "troops-abroad" in pending
    assert "HTTP 500 from the service" in pending
    assert sent.split()[1:4] == ["console", "sent", "1"]
    assert "ago" in sent
    assert "CRITICAL" in sent
    assert "https://example.org/news/" in sent


def test_deliveries_json_filters_by_status_channel_rule_and_limit(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints {"deliveries": [...]} with every field; --status, --channel, --rule and
    --limit narrow the list."""
    ids = three_states(stored.db)
    config = ("--config", stored.config)
    status, out, _err = run(capsys, *config, "deliveries", "--json", "--status", "dead")
    assert status == 0
    [dead] = json.loads(out)["deliveries"]
    assert dead["id"] == ids["dead"]
    assert set(dead) == {
        "id", "channel", "status", "attempts", "next_attempt_at", "sent_at", "created_at",
        "retry_since", "last_error", "match", "rule", "severity", "title", "link",
    }  # fmt: skip
    assert (dead["status"], dead["attempts"], dead["next_attempt_at"]) == ("dead", 9, None)
    assert dead["last_error"] == "channel 'mail': login desk:*** refused"
    assert dead["title"] == "A very long title " * 10  # JSON is not cut

    _status, out, _err = run(capsys, *config, "deliveries", "--json", "--channel", "desk")
    assert [d["id"] for d in json.loads(out)["deliveries"]] == [ids["pending"]]
    _status, out, _err = run(capsys, *config, "deliveries", "--json", "--rule", "lethal-force")
    assert [d["id"] for d in json.loads(out)["deliveries"]] == [ids["dead"], ids["sent"]]
    _status, out, _err = run(capsys, *config, "deliveries", "--json", "--limit", "1")
    assert [d["id"] for d in json.loads(out)["deliveries"]] == [ids["dead"]]
    _status, out, _err = run(capsys, *config, "deliveries", "--status", "sent", "--channel", "x")
    assert out == "no deliveries\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "0 is out of range"),
        ("1001", "1001 is out of range"),
        ("ten", "'ten' is not a whole number"),
    ],
)
def test_deliveries_limit_out_of_bounds_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    """--limit outside 1..1000 stops with exit code 2 and says what is wrong with it."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"console": "console://"})
    with pytest.raises(SystemExit) as exited:
        main(["--config", config, "deliveries", "--limit", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --limit: {message}" in err
    assert "from 1 to 1000" in err or "whole number" in err


def test_deliveries_on_a_database_never_used_lists_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the daemon ever ran, the listing says there is nothing rather than failing."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"console": "console://"})
    assert run(capsys, "--config", config, "deliveries") == (0, "no deliveries\n", "")


# --------------------------------------------------------------------------------------------
# monitor deliveries retry


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def test_retried_dead_row_gets_a_fresh_retry_period_then_is_delivered(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row dead for days, retried by id, is due at once; its first failure is retried, not
    dead-lettered for its age; the next attempt delivers it through the outbox."""
    created = utcnow() - timedelta(days=3)
    dead = add(stored.db, "desk", "dead", created=created, attempts=12, last_error="HTTP 500")

    status, out, err = await asyncio.to_thread(
        run, capsys, "--config", stored.config, "deliveries", "retry", str(dead)
    )
    assert (status, out, err) == (0, "retried 1 deliveries: due now\n", "")
    retried = row(stored.db, dead)
    assert retried.status == "pending"
    assert retried.retry_since is not None
    assert retried.next_attempt_at == retried.retry_since
    assert (retried.attempts, retried.last_error, retried.created_at) == (12, "HTTP 500", created)

    desk = FakeChannel("desk")
    desk.fail(DeliveryError("channel 'desk': HTTP 502 from the service"), times=1)
    clock = Clock(utcnow())
    outbox = Outbox(stored.db, {"desk": desk}, retry_for=timedelta(hours=24), clock=clock)
    report = await outbox.deliver_due()
    assert (report.failed, report.dead) == (1, 0)
    failing = row(stored.db, dead)
    assert (failing.status, failing.attempts) == ("pending", 13)
    assert failing.next_attempt_at is not None

    clock.now = failing.next_attempt_at
    report = await outbox.deliver_due()
    assert report.sent == 1
    assert [alert.match_id for alert in desk.sent] == [failing.match_id]
    assert row(stored.db, dead).status == "sent"


def test_retry_with_an_unknown_id_names_it_and_changes_nothing(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown ids are reported one by one with exit code 1; the known rows stay as they were."""
    ids = three_states(stored.db)
    before = row(stored.db, ids["dead"])
    status, out, err = run(
        capsys,
        "--config",
        stored.config,
        "deliveries",
        "retry",
        str(ids["dead"]),
        "999999",
        "8888888",
    )
    assert status == 1
    assert out == ""
    assert err.splitlines() == [
        "unknown delivery id: 999999",
        "unknown delivery id: 8888888",
        "nothing retried",
    ]
    assert row(stored.db, ids["dead"]) == before


def test_retry_leaves_sent_due_and_unconfigured_rows_and_says_why(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sent rows, rows due already (or leased) and rows of unconfigured channels are not
    retried, each with its reason; a failing row waiting for a backoff is due now."""
    ids = three_states(stored.db)
    now = utcnow()
    due = add(
        stored.db, "desk", "pending", created=now, next_attempt_at=now + timedelta(seconds=90)
    )
    gone = add(
        stored.db, "gone", "dead", created=now, last_error="channel 'gone' is not configured"
    )
    wanted = [ids["sent"], due, gone, ids["pending"]]
    before = {delivery_id: row(stored.db, delivery_id) for delivery_id in wanted}

    status, out, err = run(
        capsys, "--config", stored.config, "deliveries", "retry", *map(str, wanted)
    )
    assert status == 0, err
    assert out.splitlines() == [
        f"delivery {ids['sent']} not retried: already sent",
        f"delivery {due} not retried: due already or being sent",
        f"delivery {gone} not retried: channel 'gone' is not configured",
        "retried 1 deliveries: due now",
    ]
    for delivery_id in (ids["sent"], due, gone):
        assert row(stored.db, delivery_id) == before[delivery_id]
    pending = row(stored.db, ids["pending"])
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at < now + timedelta(minutes=1)
    assert pending.retry_since == pending.next_attempt_at


def test_retry_all_dead_per_channel_then_every_configured_channel(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    """--all-dead --channel retries only that channel's dead rows; --all-dead alone retries the
    dead rows of every configured channel and reports those of unconfigured ones it left."""
    now = utcnow()
    mail = [add(stored.db, "mail", "dead", created=now) for _ in range(2)]
    desk = add(stored.db, "desk", "dead", created=now)
    gone = add(stored.db, "gone", "dead", created=now)
    sent = add(stored.db, "mail", "sent", created=now, sent_at=now)
    config = ("--config", stored.config)

    status, out, _err = run(
        capsys, *config, "deliveries", "retry", "--all-dead", "--channel", "mail"
    )
    assert (status, out) == (0, "retried 2 dead deliveries: due now\n")
    assert [row(stored.db, i).status for i in (*mail, desk, gone, sent)] == [
        "pending", "pending", "dead", "dead", "sent",
    ]  # fmt: skip

    status, out, _err = run(capsys, *config, "deliveries", "retry", "--all-dead")
    assert status == 0
    assert out.splitlines() == [
        "left 1 dead deliveries of channel 'gone': it is not configured",
        "retried 1 dead deliveries: due now",
    ]
    assert [row(stored.db, i).status for i in (desk, gone, sent)] == ["pending", "dead", "sent"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give delivery ids or --all-dead"),
        (["1", "--all-dead"], "give delivery ids or --all-dead"),
        (["1", "--channel", "mail"], "--channel goes with --all-dead"),
        (["--all-dead", "--channel", "nope"], "unknown channel 'nope' (configured: console, desk"),
        (["0"], "argument ID: 0 is out of range"),
    ],
)
def test_retry_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Retry without ids or --all-dead, with both, with a stray --channel or an unknown one, or
    with an id that cannot exist, is a usage error (exit code 2) saying which."""
    config = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'm.db'}",
        {"console": "console://", "desk": "console://"},
    )
    with pytest.raises(SystemExit) as exited:
        main(["--config", config, "deliveries", "retry", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# monitor notify-test


@dataclass
class SlackStandIn:
    """Answers Slack webhook posts with ``status`` and ``body``; records each payload."""

    status: int = 200
    body: str = "ok"
    payloads: list[Any] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.payloads.append(await request.json())
        return web.Response(status=self.status, text=self.body)


@pytest.fixture
async def slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SlackStandIn]:
    """An aiohttp stand-in for hooks.slack.com on 127.0.0.1, with Apprise's Slack plugin
    pointed at it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    stand_in = SlackStandIn()
    app = web.Application()
    app.router.add_post("/services/{a}/{b}/{c}", stand_in.handle)
    async with listening(app) as port:
        monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{port}/services")
        yield stand_in


async def test_notify_test_slack_reports_sent_then_the_services_refusal(
    slack: SlackStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """notify-test posts one labelled test alert with a snippet to Slack and prints "sent"
    (exit 0); when Slack answers 403 it prints the failure (exit 1); the masked URL names the
    target and no token is ever printed, in the output or in DEBUG logs."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"team": SLACK_URL})

    status, out, err = await asyncio.to_thread(
        run, capsys, "--config", config, "notify-test", "team"
    )
    assert status == 0, err
    first, result = out.splitlines()
    assert first.startswith("sending a test alert to 'team' (slack://")
    assert result == "sent"
    [payload] = slack.payloads
    text = json.dumps(payload)
    assert "[TEST] monitor test alert" in text
    assert "test alert" in payload["attachments"][0]["text"]
    assert "notify-test" in payload["attachments"][0]["text"]

    slack.status, slack.body = 403, "invalid_token"
    # At DEBUG, urllib3 logs the webhook's path (its tokens): redacted all the same.
    status, out, err = await asyncio.to_thread(
        run, capsys, "--config", config, "--log-level", "DEBUG", "notify-test", "team"
    )
    assert status == 1
    assert "POST /services/***/***/***" in err  # urllib3 logged the webhook path, redacted
    result = out.splitlines()[-1]
    assert result.startswith("failed: channel 'team': ")
    assert "403" in result
    assert len(slack.payloads) == 2


# --------------------------------------------------------------------------------------------
# notify-test by email


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on 127.0.0.1 accepting SMTP_USER/SMTP_PASSWORD without TLS."""
    server = SmtpServer(free_port(), user=SMTP_USER, password=SMTP_PASSWORD)
    with smtp_serving(server, server.port):
        yield server


def test_notify_test_email_is_delivered_then_a_refused_login_is_reported(
    smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """notify-test mails the test alert through a real SMTP server and prints "sent"; with the
    login refused it prints the failure and exits 1; the password is never printed."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"mail": mail_url(smtp.port)})

    status, out, err = run(capsys, "--config", config, "notify-test", "mail")
    assert status == 0, err
    assert out.splitlines()[-1] == "sent"
    assert "mailto://desk:" in out  # the masked URL
    [message] = smtp.messages
    assert b"[TEST] monitor test alert" in message

    smtp.accept_login = False
    status, out, _err = run(capsys, "--config", config, "notify-test", "mail")
    assert status == 1
    assert out.splitlines()[-1].startswith("failed: channel 'mail': ")
    assert len(smtp.messages) == 1


def test_notify_test_unknown_channel_is_a_usage_error_naming_the_configured_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown channel id stops with exit code 2, naming every configured channel id."""
    config = write_config(
        tmp_path, f"sqlite:///{tmp_path / 'm.db'}", {"console": "console://", "team": SLACK_URL}
    )
    with pytest.raises(SystemExit) as exited:
        main(["--config", config, "notify-test", "nope"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "unknown channel 'nope' (configured: console, team)" in err
    assert_no_secrets(out + err)
