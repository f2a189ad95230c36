"""Hot reload: an edit of the rules, the templates or the config is validated and swapped in
while the daemon runs, or refused with every problem while the previous rules stay active.

What triggers a reload: a file-system event under the rules path, the templates folder, or the
config file's folder (the config file itself, its OPML file, or a ``..data`` entry as Kubernetes
swaps mounted ConfigMaps), grouped over :data:`SETTLE` seconds of quiet; and SIGHUP. An event
reloads only when the content changed: a digest of the config, every rule file, every template
and the OPML file is compared with the last one seen, so a touch or an identical save does
nothing. SIGHUP reloads whatever the digest says.

A reload runs the whole validation (:meth:`monitor.app.App.load`) and compiles the rules, in a
thread, while articles keep being matched with the active rules. Then, valid:

- the pipeline's :class:`~monitor.pipeline.CompiledRules` is replaced by one reference
  assignment: an article being matched finishes with the rules it started with, the next one
  uses the new rules, and no article waits or is skipped;
- the routing and timing policy (``notify``, ``routes``, ``stories``, channels' digests, quiet
  hours and bursts) is replaced the same way;
- channels: when their list, URLs, rates or the delivery settings (``retry_*``,
  ``delivery_lease``) changed, the outbox worker is replaced: the old one finishes its sends in
  flight (see :data:`monitor.notify.outbox.STOP_GRACE`) and the new one starts on what is due;
  deliveries wait in the database meanwhile, none is lost. Otherwise the running channels only
  take their new templates;
- ``retention`` applies from its next daily run;
- sources (``sources``, the ``feeds_opml`` file's feeds), ``fetching`` and ``public_url``: the
  feeds' states are stored first (:meth:`monitor.app.Daemon.stage_sources`, which waits on the
  database) while the feed dispatcher is held, so no selection sees states and settings
  disagree; then the sources are swapped with the rules and the policy, with no await in
  between (:meth:`monitor.app.Daemon.swap_sources`). A database error there fails the reload,
  nothing changed, and it is tried again after :data:`STAGE_RETRY` seconds.

``http.token``: a new token is required from the next request on (the server reads it at each
one), so a leaked token is rotated without a restart.

Everything else needs a restart: ``database``, ``http`` (its address, adding or removing the
server, or removing its token), ``fetching.parsers`` and ``fetching.parse_memory``
(:data:`RESTART_FETCHING`), ``public_url`` while no HTTP server runs, and keys this module does
not know. A reload that changes them still swaps the rest, logs a
warning naming them, and lists them in :attr:`ReloadStatus.restart_needed`; the daemon keeps
their previous values (:func:`running_settings`).

Invalid: nothing changes; each problem is logged once at ERROR as ``file:line: message``, and the
status keeps them until a valid reload.

For the HTTP API and metrics: ``Daemon.reload_status`` is the current :class:`ReloadStatus`
(``as_json()`` for /api/rules and the dashboard), and ``Daemon.reloader.subscribe(callback)``
calls ``callback(status)`` after each reload attempt, valid or not (a failure counter increments
when ``status.ok`` is false; ``status.failures`` is the running total).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import watchfiles
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError, Problem
from monitor.logs import redact, register_values
from monitor.matching.loader import rule_files
from monitor.notify.channels import Channel
from monitor.notify.outbox import Outbox
from monitor.pipeline import CompiledRules
from monitor.settings import Settings
from monitor.store.tables import utcnow
from monitor.yamlfile import read_regular

if TYPE_CHECKING:
    from monitor.app import App, Daemon
    from monitor.sources.feed import FeedSources

__all__ = [
    "HOT_KEYS",
    "OUTBOX_KEYS",
    "RESTART_FETCHING",
    "SETTLE",
    "SOURCE_KEYS",
    "Changes",
    "OutboxWorker",
    "ReloadStatus",
    "Reloader",
    "WatchRoot",
    "compare",
    "content_digest",
    "running_settings",
    "watch_roots",
]

log = logging.getLogger(__name__)

SETTLE = 0.3
"""Seconds without a file-system event before a reload starts: an editor's save, a ``git pull``
or a ``cp -r`` of many rule files is one reload, not one per file."""
STAGE_RETRY = 30.0
"""Seconds before a reload whose sources the database refused is tried again."""
SETTLE_MAX = 5.0
"""A reload starts at the latest this many seconds after the first event, even if events go on."""
WATCH_DEBOUNCE_MS = 200
"""watchfiles groups the events of one root over this long."""

HOT_KEYS = frozenset(
    {
        "rules",
        "templates",
        "channels",
        "notify",
        "routes",
        "stories",
        "retry_for",
        "retry_first",
        "retry_max",
        "delivery_lease",
        "retention",
        "sources",
        "feeds_opml",
        "fetching",
        "public_url",
    }
)
"""Config keys a reload applies (``fetching`` but :data:`RESTART_FETCHING`, ``public_url`` while
the HTTP server runs); a change to any other key needs a restart."""
OUTBOX_KEYS = ("channels", "retry_for", "retry_first", "retry_max", "delivery_lease")
"""Config keys the outbox is built from: a change to one replaces the outbox worker."""
SOURCE_KEYS = ("sources", "fetching", "public_url")
"""Config keys the sources are run with: a change to one reconfigures them."""
RESTART_FETCHING = ("parsers", "parse_memory")
"""``fetching`` keys set when the parser processes start: the size of their pool, and each
process's memory limit (a process already running keeps its limit)."""


@dataclass(frozen=True)
class ReloadStatus:
    """The outcome of the last reload, for /api/rules, the dashboard and metrics."""

    ok: bool
    """The last attempt succeeded (True before any attempt: the rules of the start are active)."""
    loaded_at: datetime
    """When the active rules were loaded (start-up, or the last valid reload)."""
    rules: int
    """Rules active now."""
    attempted_at: datetime | None = None
    """When a reload was last attempted; None: never since start."""
    problems: tuple[Problem, ...] = ()
    """The last failed attempt's problems (secrets redacted); empty after a valid one."""
    failures: int = 0
    """Failed attempts since the daemon started."""
    reloads: int = 0
    """Valid reloads since the daemon started."""
    restart_needed: tuple[str, ...] = ()
    """Config keys that differ from what runs and that only a restart applies (``database``,
    ``fetching.parsers``...)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "loaded_at": self.loaded_at.isoformat(),
            "rules": self.rules,
            "attempted_at": self.attempted_at.isoformat() if self.attempted_at else None,
            "problems": [str(problem) for problem in self.problems],
            "failures": self.failures,
            "reloads": self.reloads,
            "restart_needed": list(self.restart_needed),
        }


@dataclass(frozen=True)
class Changes:
    """What a valid reload changes beyond the rules."""

    outbox: bool
    """Channels or delivery settings changed: the outbox worker is replaced."""
    restart: tuple[str, ...]
    """Keys that changed but apply only at the next start (``fetching.parsers`` for a key
    within ``fetching``)."""
    sources: bool = False
    """Sources, their fetch settings or ``public_url`` changed: the sources are reconfigured."""


def compare(active: Settings, new: Settings) -> Changes:
    """What swapping ``new`` in for ``active`` takes (pure)."""
    running = running_settings(active, new)
    names = type(new).model_fields
    differ = [name for name in names if getattr(active, name) != getattr(running, name)]
    restart: list[str] = []
    for name in names:
        kept, wanted = getattr(running, name), getattr(new, name)
        if kept == wanted:
            continue
        if name == "fetching":
            restart += [
                f"fetching.{key}"
                for key in RESTART_FETCHING
                if getattr(kept, key) != getattr(wanted, key)
            ]
        else:
            restart.append(name)
    return Changes(
        outbox=any(name in OUTBOX_KEYS for name in differ),
        restart=tuple(restart),
        sources=any(name in SOURCE_KEYS for name in differ),
    )


def running_settings(active: Settings, new: Settings) -> Settings:
    """``new`` with every key a reload does not apply kept as ``active`` has it: the settings the
    daemon runs with after the swap."""
    kept: dict[str, Any] = {
        name: getattr(active, name) for name in type(new).model_fields if name not in HOT_KEYS
    }
    kept["fetching"] = new.fetching.model_copy(
        update={key: getattr(active.fetching, key) for key in RESTART_FETCHING}
    )
    if active.http is not None and new.http is not None and new.http.token:
        # A new token applies at once (the server reads it at each request), so a leaked one
        # can be rotated without a restart; the address stays bound until one. Removing the
        # token needs a restart: the server may listen where it requires one.
        kept["http"] = active.http.model_copy(update={"token": new.http.token})
    if kept["http"] is None:
        # No HTTP server runs (one added by this edit starts at the next start): the hubs
        # would have nowhere to call back.
        kept["public_url"] = active.public_url
    return new.model_copy(update=kept)


# -- what is watched, and its digest ------------------------------------------------------------


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def _opml(config: Path, settings: Settings) -> Path | None:
    if settings.feeds_opml is None:
        return None
    return _under(config.resolve().parent, settings.feeds_opml)


def content_digest(config: Path, settings: Settings) -> str:
    """A digest of everything a reload reads: the config file, every rule file under
    ``settings.rules``, every file under the templates folder, and the OPML file. A file that
    cannot be read counts with its error. Blocking."""
    digest = hashlib.sha256()

    def add(path: Path) -> None:
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        try:
            data = read_regular(path)  # a FIFO named like a rule file must not block the watch
        except OSError as exc:
            data = f"unreadable: {exc.errno}".encode()
        digest.update(hashlib.sha256(data).digest())

    add(config)
    for path in rule_files(settings.rules):
        add(path)
    if settings.templates.is_dir():
        for path in sorted(settings.templates.rglob("*")):
            if path.is_file():
                add(path)
    opml = _opml(config, settings)
    if opml is not None:
        add(opml)
    return digest.hexdigest()


@dataclass(frozen=True)
class WatchRoot:
    """A folder to watch: recursively, or only for events on ``names`` (paths in it)."""

    path: Path
    recursive: bool
    names: frozenset[Path] | None = None
    """None: every event counts; else only these paths (and ``..data`` entries)."""

    def accepts(self, _change: watchfiles.Change, name: str) -> bool:
        if self.names is None:
            return True
        path = Path(name)
        return path in self.names or path.name.startswith("..")


def watch_roots(config: Path, settings: Settings) -> list[WatchRoot]:
    """The folders whose events may change what a reload reads (existing folders only)."""
    config = config.resolve()
    targets: dict[tuple[Path, bool], set[Path] | None] = {}

    def watch_entry(path: Path) -> None:
        # An entry of a folder (the config file, the rules folder itself): its parent is
        # watched, not it, so that an editor replacing the file by a rename is seen too.
        key = (path.parent, False)
        if key in targets:
            names = targets[key]
            if names is not None:
                names.add(path)
        else:
            targets[key] = {path}

    watch_entry(config)
    for folder in (settings.rules, settings.templates):
        watch_entry(folder)
        if folder.is_dir():
            targets[folder, True] = None
    opml = _opml(config, settings)
    if opml is not None:
        watch_entry(opml)
    return [
        WatchRoot(path, recursive, frozenset(names) if names is not None else None)
        for (path, recursive), names in sorted(targets.items(), key=lambda item: str(item[0]))
        if path.is_dir()
    ]


# -- the outbox worker, replaceable -------------------------------------------------------------


class OutboxWorker:
    """Runs the daemon's :class:`Outbox` until stopped; :meth:`replace` swaps in another one
    (new channels): the running one stops as at shutdown (its sends in flight finish, within
    its grace), then the new one starts with a pass over everything due."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._replaced = asyncio.Event()

    def replace(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._replaced.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            outbox = self.outbox
            self._replaced.clear()
            halt = asyncio.Event()
            relay = asyncio.create_task(
                _set_on_first(halt, stop, self._replaced), name="outbox:replace"
            )
            try:
                await outbox.run(halt)
            finally:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)
            if outbox is not self.outbox:
                log.info("outbox restarted with the reloaded channels", extra={"stage": "reload"})


async def _set_on_first(target: asyncio.Event, *events: asyncio.Event) -> None:
    """Set ``target`` as soon as one of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        target.set()
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# -- the reloader -------------------------------------------------------------------------------


@dataclass
class _Prepared:
    app: App
    compiled: CompiledRules


Listener = Callable[[ReloadStatus], None]


class Reloader:
    """Watches what the daemon's config reads and swaps valid changes into ``daemon``.

    ``load`` is :meth:`App.load`. Without a config path (an App built by hand), nothing is
    watched and :meth:`run` only waits for the stop.
    """

    def __init__(self, daemon: Daemon, load: Callable[[Path], App]) -> None:
        self.daemon = daemon
        self.config = daemon.app.config
        self.load = load
        self.status = ReloadStatus(ok=True, loaded_at=utcnow(), rules=len(daemon.app.rules.rules))
        self.checks = 0
        """How many times the files were compared with the last digest (for tests and
        diagnostics): each settled burst of events, and each SIGHUP, is one."""
        self._listeners: list[Listener] = []
        self._digest: str | None = None
        self._dirty = asyncio.Event()
        self._forced = False
        self._rewatch = asyncio.Event()
        self._lock = asyncio.Lock()
        if self.config is not None:
            # Taken now, right after App.load: an edit from here on is a change.
            self._digest = content_digest(self.config, daemon.app.settings)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(status)`` after every reload attempt (in the event loop: it must not
        block). An exception it raises is logged, never propagated."""
        self._listeners.append(listener)

    def request(self, reason: str = "SIGHUP") -> None:
        """Reload as soon as possible, even if no file changed (the SIGHUP handler)."""
        log.info("reload requested (%s)", reason, extra={"stage": "reload"})
        self._forced = True
        self._dirty.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and reload until ``stop`` is set. Errors are logged; the loop goes on."""
        if self.config is None:
            await stop.wait()
            return
        watcher = asyncio.create_task(self._watch(stop), name="reload:watch")
        # Once at start: an edit made before the watch began is caught here.
        self._dirty.set()
        try:
            while not stop.is_set():
                await _set_on_first(asyncio.Event(), stop, self._dirty)
                if stop.is_set():
                    break
                await self._settle(stop)
                forced, self._forced = self._forced, False
                try:
                    await self.reload(force=forced)
                except Exception:
                    log.exception("reload failed unexpectedly", extra={"stage": "reload"})
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _settle(self, stop: asyncio.Event) -> None:
        """Wait until no event came for SETTLE seconds (SETTLE_MAX at most)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_MAX
        while not stop.is_set():
            self._dirty.clear()
            wait = min(SETTLE, deadline - loop.time())
            if wait <= 0:
                return
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=wait)
            except TimeoutError:
                return

    async def reload(self, *, force: bool = False) -> ReloadStatus:
        """Validate and swap in the config and rules if their files changed (or ``force``);
        return the status. Never raises ConfigError: an invalid change is reported in the
        status and the log."""
        if self.config is None:
            return self.status
        config = self.config
        async with self._lock:
            active = self.daemon.app
            digest = await asyncio.to_thread(content_digest, config, active.settings)
            self.checks += 1
            if digest == self._digest and not force:
                log.debug("config and rules unchanged: not reloaded", extra={"stage": "reload"})
                return self.status
            self._digest = digest
            attempted = utcnow()
            try:
                prepared = await asyncio.to_thread(self._prepare, config)
            except ConfigError as exc:
                self._failed(attempted, exc.problems)
            except Exception as exc:
                log.exception("reload: loading failed", extra={"stage": "reload"})
                self._failed(attempted, [Problem(str(config), 0, f"unexpected error: {exc!r}")])
            else:
                await self._swap(prepared, attempted)
            # The rules or templates folder may have moved, or appeared.
            if self._roots(self.daemon.app.settings) != self._watched:
                self._rewatch.set()
            self._tell()
            return self.status

    def _prepare(self, config: Path) -> _Prepared:
        """Load and compile (blocking, in a thread): the costly part, done before the swap."""
        app = self.load(config)
        return _Prepared(app, CompiledRules.build(app.rules))

    def _failed(self, attempted: datetime, found: Sequence[Problem]) -> None:
        # Shown by the HTTP API too, which has no redacting log handler in front of it.
        problems = [replace(problem, message=redact(problem.message)) for problem in found]
        extra = {"stage": "reload"}
        for problem in problems:
            log.error("reload rejected: %s", problem, extra=extra)
        log.warning(
            "reload rejected with %d problems; the previous rules stay active (%d rules)",
            len(problems),
            self.status.rules,
            extra=extra,
        )
        self.status = replace(
            self.status,
            ok=False,
            attempted_at=attempted,
            problems=tuple(problems),
            failures=self.status.failures + 1,
        )

    async def _swap(self, prepared: _Prepared, attempted: datetime) -> None:
        """Swap the prepared config in. Changed sources first store their feeds' states,
        holding the feed dispatcher, which waits until the swap is done; should the database
        refuse, the reload fails, nothing changes, and it is tried again after
        :data:`STAGE_RETRY` seconds (or at the next edit)."""
        active = self.daemon.app.settings
        changes = compare(active, prepared.app.settings)
        settings = running_settings(active, prepared.app.settings)
        if not changes.sources:
            self._apply(prepared, attempted, changes, settings, None)
            return
        async with self.daemon.sources_held():
            try:
                feeds = await self.daemon.stage_sources(settings)
            except Exception as exc:
                if not isinstance(exc, SQLAlchemyError | OSError):
                    log.exception("sources not staged", extra={"stage": "reload"})
                # Not applied: tried again in a while, even if no file changes meanwhile.
                self._digest = None
                asyncio.get_running_loop().call_later(STAGE_RETRY, self.request, "retry")
                reason = redact(self.daemon.db.explain(exc))
                problem = Problem(str(self.config), 0, f"feeds not stored: {reason}")
                self._failed(attempted, [problem])
                return
            self._apply(prepared, attempted, changes, settings, feeds)

    def _apply(
        self,
        prepared: _Prepared,
        attempted: datetime,
        changes: Changes,
        settings: Settings,
        feeds: FeedSources | None,
    ) -> None:
        """Swap the prepared config in (in the event loop; nothing here waits): rules, policy,
        channels and, when they changed, sources, with ``feeds`` as staged for them."""
        from_app = self.daemon.app
        new = prepared.app
        if settings.http is not None and settings.http.token:
            register_values([settings.http.token])  # a rotated token: never in a log line
        pipeline = self.daemon.pipeline
        pipeline.rules = prepared.compiled
        pipeline.policy = settings.policy()
        channels: Mapping[str, Channel]
        if changes.outbox:
            channels = new.channels
            self.daemon.delivery.replace(self.daemon.build_outbox(settings, channels))
        else:
            channels = from_app.channels
            for channel_id, channel in channels.items():
                # The same channels; their templates may have changed (files, or rules').
                channel.templates = new.channels[channel_id].templates
        if changes.sources:
            self.daemon.swap_sources(settings, feeds)
        self.daemon.app = replace(new, settings=settings, channels=dict(channels))
        extra = {"stage": "reload"}
        log.info(
            "reloaded: %d rules from %d files (were %d)%s%s",
            len(new.rules.rules),
            len(new.rules.files),
            len(from_app.rules.rules),
            "; channels restarted" if changes.outbox else "",
            f"; sources: {len(settings.sources)}" if changes.sources else "",
            extra=extra,
        )
        if changes.restart:
            log.warning(
                "changes to %s take effect only after a restart; the daemon goes on with the "
                "ones it started with",
                ", ".join(changes.restart),
                extra=extra,
            )
        self.status = replace(
            self.status,
            ok=True,
            loaded_at=attempted,
            rules=len(new.rules.rules),
            attempted_at=attempted,
            problems=(),
            reloads=self.status.reloads + 1,
            restart_needed=changes.restart,
        )

    def _tell(self) -> None:
        for listener in self._listeners:
            try:
                listener(self.status)
            except Exception:
                log.exception("reload listener %r failed", listener, extra={"stage": "reload"})

    # -- watching -------------------------------------------------------------------------------

    _watched: list[WatchRoot] | None = None

    def _roots(self, settings: Settings) -> list[WatchRoot]:
        assert self.config is not None
        return watch_roots(self.config, settings)

    async def _watch(self, stop: asyncio.Event) -> None:
        """Follow every watch root until stopped; start afresh when the roots change (a reload
        moved the rules) or a root's watch ended (its folder was replaced or removed)."""
        delay = 1.0
        while not stop.is_set():
            roots = await asyncio.to_thread(self._roots, self.daemon.app.settings)
            self._watched = roots
            self._rewatch.clear()
            halt = asyncio.Event()
            tasks: list[asyncio.Task[Any]] = [
                asyncio.create_task(self._follow(root, halt), name=f"reload:watch:{root.path}")
                for root in roots
            ]
            rewatch = asyncio.create_task(_set_on_first(halt, stop, self._rewatch))
            try:
                await asyncio.wait([rewatch, *tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                halt.set()
                for task in (rewatch, *tasks):
                    task.cancel()
                results = await asyncio.gather(rewatch, *tasks, return_exceptions=True)
            for error in [r for r in results if isinstance(r, Exception)]:
                log.warning(
                    "watching the config and rules failed: %r; watching again",
                    error,
                    extra={"stage": "reload"},
                )
            if self._rewatch.is_set():
                delay = 1.0
                continue
            # A root's folder went away or was replaced: whatever it held now is a change.
            self._dirty.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)

    async def _follow(self, root: WatchRoot, halt: asyncio.Event) -> None:
        """Mark a change for each group of events under ``root``; return when its folder is
        gone or replaced (its watch would follow a dead folder)."""
        async for events in watchfiles.awatch(
            root.path,
            stop_event=halt,
            debounce=WATCH_DEBOUNCE_MS,
            step=50,
            recursive=root.recursive,
            watch_filter=root.accepts,
        ):
            self._dirty.set()
            if not root.path.is_dir() or any(Path(name) == root.path for _c, name in events):
                return
