"""The ``monitor`` command: parse arguments, call the app, print. No logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import __version__, backtest, settings
from monitor.app import App, Daemon
from monitor.documents import SUPPORTED_SUFFIXES, parse_document
from monitor.durations import parse_duration
from monitor.errors import ConfigError, DocumentError
from monitor.logs import configure_logging
from monitor.matching.engine import Matcher
from monitor.matching.loader import RuleSet, load_rules
from monitor.matching.schema import json_schema
from monitor.models import Article, RuleMatch
from monitor.sources.health import source_health
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import utcnow

EXIT_OK, EXIT_INPUT, EXIT_CONFIG = 0, 1, 2


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
    matches.add_argument("--limit", type=int, default=20)
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
    return parser


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
    return asyncio.run(Daemon(app).run(once=args.once))


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
            articles = parse_document(path.name, path.read_bytes())
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
        print(f"{document['input']}: {document['title']}")
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
    db = Database(config.database)
    try:
        with db.session() as session:
            # A database the daemon never ran on has no tables yet: nothing matched.
            exists = repo.schema_exists(session)
            rows = repo.recent_matches(session, args.limit, args.rule) if exists else []
            deliveries = repo.deliveries_for(session, [m.id for m, _a in rows if m.id is not None])
    finally:
        db.dispose()
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
    db = Database(config.database)
    try:
        with db.session() as session:
            exists = repo.schema_exists(session)
            feeds = repo.feed_states(session) if exists else {}
            folders = repo.source_states(session) if exists else {}
    finally:
        db.dispose()
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
    db = Database(config.database)
    started = time.monotonic()
    try:
        total, checked = backtest.scan(db, Matcher(ruleset.rules), since)
        if sys.stderr.isatty():
            checked = backtest.ProgressBar(sys.stderr, total).track(checked)
        result = backtest.compare(checked, [rule.id for rule in ruleset.rules], args.limit)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(backtest.as_json(result, since), ensure_ascii=False, indent=2))
    else:
        print(backtest.as_text(result, time.monotonic() - started))
    return EXIT_OK
