"""The ``monitor`` command: parse arguments, call the app, print. No logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, backtest, retention, settings
from monitor.app import App, Daemon
from monitor.documents import SUPPORTED_SUFFIXES, parse_document
from monitor.durations import parse_duration
from monitor.errors import ConfigError, DocumentError, SchemaError
from monitor.logs import configure_logging, register_secrets
from monitor.matching.engine import Matcher
from monitor.matching.loader import RuleSet, load_rules
from monitor.matching.schema import json_schema
from monitor.models import Article, RuleMatch
from monitor.notify import operations
from monitor.notify.channels import Channel
from monitor.notify.render import TemplateChoice, TemplateSet, visible
from monitor.sources.health import source_health
from monitor.store import migrate, repo
from monitor.store.db import Database
from monitor.store.tables import utcnow
from monitor.yamlfile import read_regular

EXIT_OK, EXIT_INPUT, EXIT_CONFIG, EXIT_DATABASE = 0, 1, 2, 3
MAX_LIMIT = 1000
"""The most rows `monitor deliveries` and `monitor matches` list at once."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        result: int = args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except SchemaError as exc:  # `run` and `db upgrade`: the message names the database, masked
        print(exc, file=sys.stderr)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`monitor test ... | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", description="Watch feeds and folders; alert when articles match watchlists."
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        # Global options are accepted after the command too: `monitor run --config x.yaml`.
        sub = commands.add_parser(name, help=help_text)
        _global_options(sub, defaults=False)
        return sub

    run = command("run", "run the daemon")
    run.add_argument("--once", action="store_true", help="poll every source once, deliver, exit")
    run.set_defaults(handler=_run)

    check = command("check", "validate the config and every rule file")
    check.set_defaults(handler=_check)

    test = command("test", "match documents against the rules; store nothing")
    test.add_argument("--rules", help="rules file or folder (default: the config's)")
    test.add_argument("--json", action="store_true", help="print JSON")
    test.add_argument(
        "--explain", action="store_true", help="say, for each rule that did not match, why"
    )
    test.add_argument("inputs", nargs="+", metavar="INPUT", help="documents or folders of them")
    test.set_defaults(handler=_test)

    schema = command("schema", "print the JSON Schema of rule files (for editors)")
    schema.set_defaults(handler=_schema)

    matches = command("matches", "list recent stored matches")
    matches.add_argument(
        "--limit",
        type=_between(1, MAX_LIMIT),
        default=20,
        help=f"at most this many, 1 to {MAX_LIMIT} (default 20)",
    )
    matches.add_argument("--rule", help="only this rule id")
    matches.add_argument("--json", action="store_true", help="print JSON")
    matches.set_defaults(handler=_matches)

    sources = command("sources", "show every source's health: last success, errors, next check")
    sources.add_argument("--json", action="store_true", help="print JSON")
    sources.set_defaults(handler=_sources)

    back = command("backtest", "run the current rules over stored articles; write nothing")
    back.add_argument(
        "--since", type=_duration, default="7d", help="articles stored this recently (default 7d)"
    )
    back.add_argument("--rules", help="rules file or folder (default: the config's)")
    back.add_argument("--json", action="store_true", help="print JSON")
    back.add_argument(
        "--limit", type=_non_negative, default=20, help="new and lost examples to list (default 20)"
    )
    back.set_defaults(handler=_backtest)
    _operator_commands(command)
    _database_commands(command)
    return parser


def _operator_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`deliveries`, `deliveries retry` and `notify-test`."""
    deliveries = command("deliveries", "list deliveries (the outbox), newest first; retry them")
    deliveries.add_argument("--status", choices=operations.STATUSES, help="only this status")
    deliveries.add_argument("--channel", help="only this channel id")
    deliveries.add_argument("--rule", help="only this rule id")
    deliveries.add_argument(
        "--limit",
        type=_between(1, MAX_LIMIT),
        default=50,
        help=f"at most this many, 1 to {MAX_LIMIT} (default 50)",
    )
    deliveries.add_argument("--json", action="store_true", help="print JSON")
    deliveries.set_defaults(handler=_deliveries)
    actions = deliveries.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser(
        "retry", help="make dead (or failing) deliveries due now, with a fresh retry period"
    )
    _global_options(retry, defaults=False)
    retry.add_argument("ids", nargs="*", type=_between(1, None), metavar="ID", help="delivery ids")
    retry.add_argument("--all-dead", action="store_true", help="every dead delivery")
    # SUPPRESS: `deliveries --channel X retry --all-dead` keeps X rather than resetting it.
    retry.add_argument(
        "--channel", default=argparse.SUPPRESS, help="with --all-dead: only this channel id"
    )
    retry.set_defaults(handler=_retry, usage_error=retry.error)

    notify_test = command("notify-test", "send a sample alert through a channel; say what happened")
    notify_test.add_argument("channel", metavar="CHANNEL", help="a configured channel id")
    notify_test.set_defaults(handler=_notify_test, usage_error=notify_test.error)


def _database_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`db upgrade`, `db current` and `db purge`."""
    db = command("db", "the database: upgrade its schema, show its revision, purge old articles")
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade", help="bring the schema to this version's (the daemon does it when it starts)"
    )
    _global_options(upgrade, defaults=False)
    upgrade.set_defaults(handler=_db_upgrade)
    current = actions.add_parser("current", help="show the schema's revision; change nothing")
    _global_options(current, defaults=False)
    current.set_defaults(handler=_db_current)
    purge = actions.add_parser(
        "purge", help="delete old articles that have no matches, as the daily retention job does"
    )
    _global_options(purge, defaults=False)
    purge.add_argument(
        "--older-than",
        type=_duration,
        help="stored longer ago than this, such as 90d (default: the config's retention)",
    )
    purge.set_defaults(handler=_purge, usage_error=purge.error)


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    def default(value: str | None) -> str | None:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        default=default(None),
        help=f"config file (default: ${settings.ENV_CONFIG} or {settings.DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--log-level", default=default("INFO"), choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-format", default=default("text"), choices=["text", "json"])


def _config(args: argparse.Namespace) -> Path:
    return settings.config_path(args.config)


def _run(args: argparse.Namespace) -> int:
    app = App.load(_config(args))
    daemon = Daemon(app)
    try:
        return asyncio.run(daemon.run(once=args.once))
    except SQLAlchemyError as exc:  # at start (the upgrade): unreachable, refused login, ...
        print(daemon.db.explain(exc), file=sys.stderr)
        return EXIT_DATABASE


def _check(args: argparse.Namespace) -> int:
    app = App.load(_config(args))
    print(
        f"ok: {len(app.rules.rules)} rules and {len(app.rules.actors)} actors in "
        f"{len(app.rules.files)} files, {len(app.settings.sources)} sources, "
        f"{len(app.channels)} channels"
    )
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    if args.rules:
        ruleset = load_rules(Path(args.rules))
    else:
        ruleset = load_rules(settings.load(_config(args)).rules)
    matcher = Matcher(ruleset.rules)
    documents: list[dict[str, Any]] = []
    status = EXIT_OK
    for path in _inputs(args.inputs):
        try:
            articles = parse_document(path.name, read_regular(path))
        except (DocumentError, OSError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = EXIT_INPUT
            continue
        for index, article in enumerate(articles):
            name = str(path) if len(articles) == 1 else f"{path}#{index + 1}"
            document = _document(name, article, matcher.match(article))
            if args.explain:
                document["explain"] = matcher.explain(article)
            documents.append(document)
    if args.json:
        print(json.dumps({"documents": documents}, ensure_ascii=False, indent=2))
    else:
        _print_documents(documents, ruleset)
    return status


def _schema(_args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _inputs(names: Sequence[str]) -> list[Path]:
    paths = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            paths.append(path)
    return paths


def _document(name: str, article: Article, matches: list[RuleMatch]) -> dict[str, Any]:
    return {
        "input": name,
        "title": article.title,
        "matches": [
            {
                "rule": match.rule_id,
                "severity": str(match.severity),
                "hits": [hit.as_dict() for hit in match.hits],
            }
            for match in matches
        ],
    }


def _print_documents(documents: list[dict[str, Any]], ruleset: RuleSet) -> None:
    names = {rule.id: rule.name for rule in ruleset.rules}
    for document in documents:
        # Titles are the documents' text: no escape sequence of theirs reaches the terminal.
        print(f"{document['input']}: {visible(document['title'])}")
        if not document["matches"]:
            print("  no rule matched")
        for rule_id, reason in document.get("explain", {}).items():
            print(f"  no    {rule_id}: {reason}")
        for match in document["matches"]:
            print(f"  MATCH {match['rule']} [{match['severity']}] {names.get(match['rule'], '')}")
            for hit in match["hits"]:
                print(
                    f"    {hit['kind']:<8} {hit['term']!r:<32} {hit['field']}"
                    f"[{hit['start']}:{hit['end']}] {hit['text']!r}"
                )


def _matches(args: argparse.Namespace) -> int:
    config = settings.load(_config(args))

    def read(db: Database) -> tuple[list[Any], dict[int, Any]]:
        with db.reading() as session:
            # A database the daemon never ran on has no tables yet: nothing matched.
            exists = repo.schema_exists(session)
            rows = repo.recent_matches(session, args.limit, args.rule) if exists else []
            ids = [m.id for m, _a in rows if m.id is not None]
            return rows, repo.deliveries_for(session, ids)

    found = _on_database(config.database, read, named=False)
    if found is None:
        return EXIT_DATABASE
    rows, deliveries = found
    items: list[dict[str, Any]] = []
    for match, article in rows:
        assert match.id is not None
        assert match.created_at is not None
        items.append(
            {
                "id": match.id,
                "matched_at": match.created_at.isoformat(timespec="seconds"),
                "rule": match.rule_id,
                "severity": match.severity,
                "title": article.title,
                "source": article.source_id,
                "link": article.url or article.location,
                "deliveries": {d.channel: d.status for d in deliveries[match.id]},
            }
        )
    if args.json:
        print(json.dumps({"matches": items}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not items:
        print("no matches yet")
    for item in items:
        sent = ", ".join(f"{channel}:{status}" for channel, status in item["deliveries"].items())
        print(
            f"{item['matched_at']}  {item['severity'].upper():<8} {item['rule']}  "
            f"{item['title']}  ({item['source']}: {item['link']})  [{sent or 'no channels'}]"
        )
    return EXIT_OK


def _sources(args: argparse.Namespace) -> int:
    config = settings.load(_config(args))

    def read(db: Database) -> tuple[dict[str, Any], dict[str, Any]]:
        with db.reading() as session:
            exists = repo.schema_exists(session)
            feeds = repo.feed_states(session) if exists else {}
            return feeds, repo.source_states(session) if exists else {}

    found = _on_database(config.database, read, named=False)
    if found is None:
        return EXIT_DATABASE
    feeds, folders = found
    health = source_health(config, feeds, folders, datetime.now(UTC))
    if args.json:
        print(json.dumps({"sources": [h.as_json() for h in health]}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not health:
        print("no sources configured")
        return EXIT_OK
    rows = [
        (
            h.id,
            h.type,
            h.status,
            _ago(h.last_success),
            _ago(h.next_check),
            str(h.failures or ""),
            "" if h.items_seen is None else str(h.items_seen),
            _span(h.posting_interval),
            f"{h.reason}: {h.error}" if h.reason and h.error else (h.error or h.location),
        )
        for h in health
    ]
    header = ("SOURCE", "TYPE", "STATUS", "LAST OK", "NEXT", "FAILS", "ITEMS", "POSTS", "DETAIL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1][:160]]).rstrip())
    return EXIT_OK


def _ago(when: datetime | None) -> str:
    """A time relative to now, compactly: "3m ago", "in 2h", "-" for never."""
    if when is None:
        return "-"
    seconds = (when - datetime.now(UTC)).total_seconds()
    text = _span(timedelta(seconds=abs(seconds)))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _span(span: timedelta | None) -> str:
    if span is None:
        return "-"
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


def _backtest(args: argparse.Namespace) -> int:
    config = settings.load(_config(args))
    rules_path = Path(args.rules) if args.rules else config.rules
    ruleset = load_rules(rules_path, channels=config.channel_ids())
    since = utcnow() - args.since
    started = time.monotonic()

    def run(db: Database) -> backtest.Comparison:
        total, checked = backtest.scan(db, Matcher(ruleset.rules), since)
        if sys.stderr.isatty():
            checked = backtest.ProgressBar(sys.stderr, total).track(checked)
        return backtest.compare(checked, [rule.id for rule in ruleset.rules], args.limit)

    result = _on_database(config.database, run, named=False)
    if result is None:
        return EXIT_DATABASE
    if args.json:
        print(json.dumps(backtest.as_json(result, since), ensure_ascii=False, indent=2))
    else:
        print(backtest.as_text(result, time.monotonic() - started))
    return EXIT_OK


_T = TypeVar("_T")


def _on_database(url: str, work: Callable[[Database], _T], *, named: bool = True) -> _T | None:
    """``work`` on the database at ``url`` (named first, masked, when ``named``), which is
    disposed of at the end; None, the driver's error printed, when the database is unreachable,
    refuses the login, ... (a SchemaError goes on to main)."""
    db = Database(url)
    if named:
        print(f"database {db.masked_url}")
    try:
        return work(db)
    except SQLAlchemyError as exc:
        print(db.explain(exc), file=sys.stderr)
        return None
    finally:
        db.dispose()


def _db_upgrade(args: argparse.Namespace) -> int:
    done = _on_database(settings.load(_config(args)).database, Database.upgrade)
    if done is None:
        return EXIT_DATABASE
    head = migrate.head()
    if done.adopted:
        before = f"none (tables made before migrations, the same as {migrate.BASELINE}'s: stamped)"
    else:
        before = done.before or "none (empty database)"
    print(f"before: {before}")
    print(f"after:  {done.after}{' (head)' if done.after == head else ''}")
    return EXIT_OK


_STATES = {
    "head": "{current} (head)",
    "behind": "{current} (head is {head}: `monitor db upgrade` brings it there)",
    "empty": "none (empty database: `monitor db upgrade` creates the schema)",
    "unversioned": (
        "none (tables made before migrations: `monitor db upgrade` adopts them if they match "
        "this version's schema)"
    ),
    "unknown": "{current} (not a revision of this version, whose head is {head}: a newer "
    "version upgraded it)",
}


def _db_current(args: argparse.Namespace) -> int:
    found = _on_database(settings.load(_config(args)).database, migrate.status)
    if found is None:
        return EXIT_DATABASE
    print("revision: " + _STATES[found.state].format(current=found.current, head=found.head))
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    config = settings.load(_config(args))
    older_than: timedelta | None = args.older_than or config.retention
    if older_than is None or older_than <= timedelta(0):
        args.usage_error("give --older-than (longer than 0s) or set retention in the config")
        return EXIT_CONFIG  # pragma: no cover (usage_error exits)
    before = utcnow() - older_than

    def purge(db: Database) -> int:
        with db.reading() as session:
            exists = repo.schema_exists(session)
        return retention.purge(db, before) if exists else 0

    count = _on_database(config.database, purge, named=False)
    if count is None:
        return EXIT_DATABASE
    print(f"purged {count} articles stored before {before:%Y-%m-%d %H:%M} UTC with no matches")
    return EXIT_OK


def _between(low: int, high: int | None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (no upper bound when None)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < low or (high is not None and number > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {bounds})")
        return number

    return parse


def _settings_with_secrets(args: argparse.Namespace) -> settings.Settings:
    """The config, with every channel URL's secrets registered, so that whatever these commands
    print (stored errors, services' answers) is redacted before it is shown."""

    def register(_channel_id: str, url: str) -> None:
        register_secrets(url)

    return settings.load(_config(args), check_channel=register)


def _deliveries(args: argparse.Namespace) -> int:
    config = _settings_with_secrets(args)
    views = _on_database(
        config.database,
        lambda db: operations.list_deliveries(
            db, status=args.status, channel=args.channel, rule_id=args.rule, limit=args.limit
        ),
        named=False,
    )
    if views is None:
        return EXIT_DATABASE
    if args.json:
        items = [view.as_json() for view in views]
        print(json.dumps({"deliveries": items}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not views:
        print("no deliveries")
        return EXIT_OK
    rows = [
        (
            str(view.id),
            view.channel,
            view.status,
            str(view.attempts),
            _ago(view.next_attempt_at),
            _ago(view.sent_at),
            view.rule_id,
            view.severity.upper(),
            _cut(view.title, 50),
            view.link or "-",
            _cut(view.last_error or "", 160),
        )
        for view in views
    ]
    header = (
        "ID", "CHANNEL", "STATUS", "TRIES", "NEXT", "SENT", "RULE", "SEVERITY", "TITLE", "LINK",
        "LAST ERROR",
    )  # fmt: skip
    _print_table(header, rows)
    return EXIT_OK


def _retry(args: argparse.Namespace) -> int:
    channel: str | None = getattr(args, "channel", None)
    if args.all_dead == bool(args.ids):
        args.usage_error("give delivery ids or --all-dead (one of them)")
    if channel is not None and not args.all_dead:
        args.usage_error("--channel goes with --all-dead")
    if args.status or args.rule or args.json:
        args.usage_error("--status, --rule and --json list deliveries; they do not apply to retry")
    config = _settings_with_secrets(args)
    configured = config.channel_ids()
    if channel is not None and channel not in configured:
        args.usage_error(f"unknown channel {channel!r} ({_configured(configured)})")

    def retry(db: Database) -> operations.RetryReport:
        if args.all_dead:
            return operations.retry_all_dead(
                db, now=utcnow(), configured=configured, channel=channel
            )
        return operations.retry_ids(db, args.ids, now=utcnow(), configured=configured)

    report = _on_database(config.database, retry, named=False)
    if report is None:
        return EXIT_DATABASE
    if report.unknown:
        for delivery_id in report.unknown:
            print(f"unknown delivery id: {delivery_id}", file=sys.stderr)
        print("nothing retried", file=sys.stderr)
        return EXIT_INPUT
    for delivery_id, reason in report.skipped.items():
        print(f"delivery {delivery_id} not retried: {reason}")
    for name, count in report.unconfigured.items():
        print(f"left {count} dead deliveries of channel {name!r}: it is not configured")
    what = "dead deliveries" if args.all_dead else "deliveries"
    print(f"retried {report.count} {what}: due now")
    return EXIT_OK


def _notify_test(args: argparse.Namespace) -> int:
    config = _settings_with_secrets(args)
    spec = next((c for c in config.channels if c.id == args.channel), None)
    if spec is None:
        args.usage_error(f"unknown channel {args.channel!r} ({_configured(config.channel_ids())})")
        return EXIT_CONFIG  # pragma: no cover (usage_error exits)
    try:
        channel = Channel.from_url(spec.id, spec.url)
        # The channel's own templates, so the test shows what its alerts will look like.
        channel.templates = TemplateChoice(TemplateSet(config.templates), spec.template)
    except ValueError as exc:  # the message names the channel, never the URL
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    print(f"sending a test alert to {channel.id!r} ({channel.masked_url})")
    failure = asyncio.run(operations.send_test(channel, utcnow()))
    if failure is not None:
        print(f"failed: {failure}")
        return EXIT_INPUT
    print("sent")
    return EXIT_OK


def _configured(channel_ids: Sequence[str]) -> str:
    if not channel_ids:
        return "no channels are configured"
    return "configured: " + ", ".join(channel_ids)


def _cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
