"""The daemon's configuration (config/monitor.yaml) as frozen, validated models.

Loading collects every problem with its file and line instead of stopping at the first. ``${VAR}``
and ``${VAR:-default}`` in string values come from the environment (so secrets stay out of the
file; ``$$`` is a literal ``$``); a variable that is unset and has no default is an error naming it.
Relative paths, including a relative SQLite path, resolve against the config file's folder.
The database URL is checked at load time (it parses, its backend is SQLite or PostgreSQL, its driver
imports), so a bad one is a problem at its line, not a traceback when the daemon starts.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from monitor import yamlfile
from monitor.durations import PositiveDuration, format_duration
from monitor.errors import ConfigError, Problem
from monitor.models import Severity
from monitor.notify.pacing import Rate, parse_rate
from monitor.notify.policy import (
    DEFAULT_BURST,
    ChannelPolicy,
    DigestSchedule,
    Policy,
    QuietHours,
    Route,
    zone,
)
from monitor.notify.render import override_names
from monitor.opml import read_opml

DEFAULT_CONFIG = Path("config/monitor.yaml")
ENV_CONFIG = "MONITOR_CONFIG"

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderSourceSettings(_Model):
    """A folder of documents, read recursively; new and changed files are picked up."""

    id: Id
    type: Literal["folder"]
    path: Path
    interval: PositiveDuration = timedelta(minutes=5)
    """How often the whole folder is rescanned (file-system events are handled as they come)."""
    watch: bool = True
    """React to file-system events as they happen, not only at each scan."""
    max_file_size: int = Field(default=10 * 1024 * 1024, gt=0)
    tags: tuple[str, ...] = ()


class FeedSourceSettings(_Model):
    """An RSS, Atom or JSON feed polled over HTTP(S)."""

    id: Id
    type: Literal["feed"]
    url: str
    interval: PositiveDuration | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    full_text: bool = False
    tags: tuple[str, ...] = ()
    allow_private: bool = False

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or "\\" in value:
            raise ValueError("feed url must be an absolute http:// or https:// URL")
        if any(char.isspace() for char in parts.netloc):
            raise ValueError("feed url has a space in its host")
        try:
            parts.port  # noqa: B018 (reading it validates it)
        except ValueError:
            raise ValueError("feed url has an invalid port (a number from 0 to 65535)") from None
        return value


class FetchSettings(_Model):
    """How feeds are fetched and scheduled (one block for all feeds)."""

    min_interval: PositiveDuration = timedelta(minutes=5)
    """The adaptive interval never goes below this."""
    max_interval: PositiveDuration = timedelta(hours=24)
    """...nor above this; a feed's ttl and Cache-Control are capped here too."""
    concurrency: int = Field(default=50, ge=1, le=1000)
    """Fetches in flight at once, over all hosts."""
    per_host: int = Field(default=2, ge=1, le=100)
    """Fetches in flight at once to one host name."""
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    timeout: PositiveDuration = timedelta(seconds=20)
    """The whole exchange, redirects and body included."""
    max_body: int = Field(default=15 * 1024 * 1024, ge=1024)
    """Bytes of a response body, counted after decompression."""
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_items: int = Field(default=1000, ge=1)
    """Entries read from one feed document; the rest (the oldest) are ignored."""
    parse_timeout: PositiveDuration = timedelta(seconds=10)
    parse_memory: int = Field(default=512 * 1024 * 1024, ge=64 * 1024 * 1024)
    """Bytes of memory a parser process may add for one feed."""
    parsers: int | None = Field(default=None, ge=1, le=64)
    """Parser processes; the number of CPUs when unset."""
    stale_after: PositiveDuration = timedelta(days=7)
    """A feed with no new entry for this long is flagged as stale in its health."""
    user_agent: str | None = None
    allow_private: bool = False
    """Let every feed reach private and loopback addresses (an intranet deployment); otherwise
    only feeds that set ``allow_private`` themselves may."""
    lease: PositiveDuration = timedelta(minutes=2)
    """How long a replica's claim on a feed it polls lasts (see monitor.store.claims). A replica
    that dies leaves its feeds unpolled for up to this long; a poll starts its request only
    while the exchange and its parse (``timeout`` + ``parse_timeout``) still fit in the lease."""

    @model_validator(mode="after")
    def _lease_outlasts_a_poll(self) -> FetchSettings:
        poll = self.connect_timeout + self.timeout + self.parse_timeout
        if self.lease <= poll:
            raise PydanticCustomError(
                "lease",
                "lease ({lease}) must be longer than connect_timeout + timeout + parse_timeout "
                "({poll}): a feed's claim must outlast a poll",
                {"lease": format_duration(self.lease), "poll": format_duration(poll)},
            )
        return self


SourceSettings = Annotated[FolderSourceSettings | FeedSourceSettings, Field(discriminator="type")]


def _rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    try:
        return parse_rate(value)  # type: ignore[arg-type]  # parse_rate rejects non-strings
    except ValueError as exc:
        raise PydanticCustomError("rate", "{reason}", {"reason": str(exc)}) from None


RateSetting = Annotated[Rate, PlainValidator(_rate), PlainSerializer(str)]
"""A send rate such as ``1/s`` or ``20/min`` (see :func:`monitor.notify.pacing.parse_rate`)."""


class ChannelSettings(_Model):
    """A named notification target: any Apprise URL, or ``console://``, and how it takes its
    alerts (see :mod:`monitor.notify.policy`)."""

    id: Id
    url: str = Field(repr=False)  # may hold tokens: never in repr, logs or errors
    rate: RateSetting | None = None
    """At most this many sends, strictly paced; replaces the service's documented limits
    (Slack 1/s, Telegram 1/s per chat and 20/min per group; none for other services)."""
    digest: str | None = None
    """Digests only: "1h" (every hour, on the hour), "30m", or "daily 08:00"."""
    quiet_hours: str | None = None
    """"22:00-07:00": alerts but critical ones wait until the end of these hours."""
    timezone: str = "UTC"
    """The zone of ``digest`` and ``quiet_hours`` times (an IANA name such as Europe/Berlin)."""
    burst: int = Field(default=DEFAULT_BURST, ge=1, le=10_000)
    """More alerts than this due at once go out as one digest."""
    template: Id | None = None
    """Write this channel's messages with NAME.alert.<format>.j2 and NAME.digest.<format>.j2 from
    the templates folder (a rule's own ``template`` wins)."""

    @field_validator("digest")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            DigestSchedule.parse(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            QuietHours.parse(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    def policy(self) -> ChannelPolicy:
        return ChannelPolicy(
            digest=DigestSchedule.parse(self.digest) if self.digest else None,
            quiet_hours=QuietHours.parse(self.quiet_hours) if self.quiet_hours else None,
            zone=zone(self.timezone),
            burst=self.burst,
        )


class StorySettings(_Model):
    """Folding rewrites of one story into one alert (see monitor.notify.policy)."""

    window: PositiveDuration = timedelta(hours=48)
    """How long after a story alerted a rewrite of it is folded into it, not alerted."""
    distance: int = Field(default=10, ge=0, le=32)
    """The most fingerprint bits (of 64) in which a rewrite may differ: 0 folds identical texts
    only; above 16 unrelated stories start to fold together."""


class RouteSettings(_Model):
    """Where matches go that meet every condition given; the first route that holds wins, and
    the routes after it are looked at too only when it says ``continue: true``."""

    notify: tuple[Id, ...] = Field(min_length=1)
    severity: tuple[Severity, ...] | None = None
    """Any of these severities."""
    min_severity: Severity | None = None
    source_tags: tuple[str, ...] = ()
    """A source with any of these tags."""
    rule_tags: tuple[str, ...] = ()
    """A rule with any of these tags."""
    continue_: bool = Field(default=False, alias="continue")

    def route(self) -> Route:
        return Route(
            notify=self.notify,
            severities=frozenset(self.severity) if self.severity is not None else None,
            min_severity=self.min_severity,
            source_tags=frozenset(self.source_tags),
            rule_tags=frozenset(self.rule_tags),
            carry_on=self.continue_,
        )


class HttpSettings(_Model):
    """The daemon's HTTP server: health, and the callback endpoint of WebSub subscriptions."""

    listen: str = "127.0.0.1:8080"
    """host:port to listen on."""
    token: str | None = Field(default=None, repr=False)
    """Bearer token required by every endpoint but /healthz and the WebSub callbacks (which hubs
    call, and which are authenticated by their signatures). Required to listen beyond loopback."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen must be host:port, such as 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class Settings(_Model):
    database: str = "sqlite:///data/monitor.db"
    rules: Path = Path("rules")
    sources: tuple[SourceSettings, ...] = ()
    feeds_opml: Path | None = None
    """An OPML file of feed subscriptions: each outline with an xmlUrl becomes a feed source."""
    fetching: FetchSettings = FetchSettings()
    channels: tuple[ChannelSettings, ...] = ()
    notify: tuple[str, ...] = ()
    """Channels for a rule that names none and that no route takes."""
    routes: tuple[RouteSettings, ...] = ()
    """Channels by severity, source tag and rule tag (a rule's own ``notify`` overrides them)."""
    stories: StorySettings | None = StorySettings()
    """Rewrites of a story that alerted are listed in its alert, not alerted again; null: every
    match alerts on its own."""
    templates: Path = Path("templates")
    """A folder of message templates overriding the defaults (see docs/templates.md); it need not
    exist."""
    retry_for: PositiveDuration = timedelta(hours=24)
    """A failing delivery is retried with backoff for this long, then marked dead."""
    retry_first: PositiveDuration = timedelta(seconds=30)
    """The wait after a delivery's first failure; it doubles with each failure after that."""
    retry_max: PositiveDuration = timedelta(hours=1)
    """The longest wait between two attempts (a service's Retry-After may ask for longer)."""
    delivery_lease: PositiveDuration = timedelta(minutes=2)
    """How long a delivery being sent stays with its worker. A worker killed mid-send leaves its
    delivery for this long before another (or the restarted daemon) sends it again, counted as
    a possible duplicate; a send itself is cut off at half of it (60 s at most)."""
    http: HttpSettings | None = None
    """The HTTP server; off unless configured."""
    retention: PositiveDuration | None = None
    """Articles stored longer ago than this, none of whose versions matched a rule, are deleted
    once a day (see monitor.retention); None: every article is kept."""
    public_url: str | None = None
    """Where the HTTP server is reachable from the internet (behind a reverse proxy, say): feeds
    that advertise a WebSub hub are then subscribed to, with callbacks under this URL."""

    @field_validator("public_url")
    @classmethod
    def _public_http(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("public_url must be an absolute http:// or https:// URL")
            return value.rstrip("/")
        return value

    @field_validator("database")
    @classmethod
    def _usable_database(cls, value: str) -> str:
        check_database_url(value)
        return value

    def source_ids(self) -> list[str]:
        return [source.id for source in self.sources]

    def channel_ids(self) -> list[str]:
        return [channel.id for channel in self.channels]

    def policy(self) -> Policy:
        """Routing and timing of alerts, as :mod:`monitor.notify.policy` applies them."""
        return Policy(
            default=self.notify,
            routes=tuple(route.route() for route in self.routes),
            channels={channel.id: channel.policy() for channel in self.channels},
            source_tags={source.id: source.tags for source in self.sources},
            story_window=self.stories.window if self.stories is not None else None,
            story_distance=self.stories.distance if self.stories is not None else 0,
        )


DATABASE_BACKENDS = frozenset({"sqlite", "postgresql"})
_DATABASE_HINT = "(use sqlite:///path or postgresql+psycopg://...)"


def check_database_url(value: str) -> URL:
    """The parsed URL when the store can open it; else a validation error saying why.

    The URL must parse, name SQLite or PostgreSQL, and have a synchronous driver that imports (this
    imports it, as the store would). Messages never quote the URL: it may hold a password.
    """
    try:
        url = make_url(value)
    except ArgumentError:
        # Not SQLAlchemy's message: some versions quote the whole URL, password included.
        raise _database_error(f"not a database URL {_DATABASE_HINT}") from None
    except ValueError:
        # The only ValueError make_url raises: int() of the port.
        raise _database_error("invalid port in URL") from None
    if url.port is not None and not 0 < url.port < 65536:
        raise _database_error("invalid port in URL")
    backend = url.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        raise _database_error(f"unsupported database {backend!r} {_DATABASE_HINT}")
    driver = url.get_driver_name()
    try:
        dialect = url.get_dialect()
    except (ArgumentError, ImportError):  # NoSuchModuleError is an ArgumentError
        raise _database_error(f"unknown {backend} driver {driver!r} {_DATABASE_HINT}") from None
    if dialect.is_async:
        # The store is synchronous (run in threads): an asyncio driver fails at the first query.
        raise _database_error(f"{backend} driver {driver!r} is asyncio-only {_DATABASE_HINT}")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise _database_error(
            f"{backend} driver {driver!r} is not installed {_DATABASE_HINT}"
        ) from None
    return url


def _database_error(message: str) -> PydanticCustomError:
    # A custom error, not ValueError: pydantic would prefix the message with "Value error, ".
    return PydanticCustomError("database_url", "{reason}", {"reason": message})


def vocabulary() -> set[str]:
    """Every key the config file may use, for "did you mean" suggestions."""
    models: tuple[type[BaseModel], ...] = (
        Settings,
        FolderSourceSettings,
        FeedSourceSettings,
        FetchSettings,
        ChannelSettings,
        HttpSettings,
    )
    return {name for model in models for name in model.model_fields}


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Substitute ``${VAR}`` and ``${VAR:-default}``; ``$$`` stands for ``$``."""
    env = os.environ if environ is None else environ

    def substitute(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name, default = found.group(1), found.group(2)
        if name in env and (env[name] or default is None):
            return env[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set")

    return _VARIABLE.sub(substitute, value)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $MONITOR_CONFIG, else config/monitor.yaml."""
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load(
    path: Path,
    environ: Mapping[str, str] | None = None,
    check_channel: Callable[[str, str], None] | None = None,
) -> Settings:
    """Load and validate the config file; raise ConfigError listing every problem.

    ``check_channel(id, url)`` raises ValueError when a channel URL is unusable; its message names
    the channel and must not contain the URL (it may hold secrets).
    """
    doc = yamlfile.load(path, interpolate=lambda value: interpolate(value, environ))
    problems = list(doc.problems)
    if doc.problems and doc.value is None:
        raise ConfigError(problems)
    raw = doc.value if doc.value is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError([Problem(doc.file, 1, "the config must be a mapping of keys")])
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems += yamlfile.validation_problems(doc, exc, vocabulary())
        raise ConfigError(problems) from None
    base = path.resolve().parent
    if settings.feeds_opml is not None:
        try:
            settings = _with_opml_feeds(settings, _under(base, settings.feeds_opml))
        except ConfigError as exc:
            problems += exc.problems
    problems += _cross_checks(settings, doc)
    problems += _template_checks(settings, doc, _under(base, settings.templates))
    for index, channel in enumerate(settings.channels):
        try:
            if check_channel is not None:
                check_channel(channel.id, channel.url)
        except ValueError as exc:
            problems.append(doc.problem(("channels", index, "url"), str(exc)))
    if problems:
        raise ConfigError(problems)
    return resolve_paths(settings, base)


def _shown_url(url: str) -> str:
    """A feed URL as a problem may quote it: its credentials masked, cut to 200 characters."""
    # Imported here: monitor.sources imports the settings.
    from monitor.sources.health import display_url  # noqa: PLC0415

    try:
        return display_url(url)[:200]
    except ValueError:  # not even a URL urlsplit can read: nothing of it is shown
        return "(unreadable URL)"


def _with_opml_feeds(settings: Settings, path: Path) -> Settings:
    """``settings`` with a feed source for each feed of the OPML file that the config does not
    list already (by URL); an unusable URL is a problem at its line in the OPML file."""
    listed = {source.url for source in settings.sources if isinstance(source, FeedSourceSettings)}
    added: list[FeedSourceSettings] = []
    problems = []
    for outline in read_opml(path):
        if outline.url in listed:
            continue
        try:
            added.append(
                FeedSourceSettings(
                    id=outline.source_id, type="feed", url=outline.url, tags=outline.tags
                )
            )
        except ValidationError as exc:
            reasons = "; ".join(
                str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
            )
            problems.append(
                Problem(str(path), outline.line, f"feed {_shown_url(outline.url)!r}: {reasons}")
            )
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update={"sources": (*settings.sources, *added)})


def _cross_checks(settings: Settings, doc: yamlfile.Document) -> list[Problem]:
    problems = []
    for kind, ids in (("source", settings.source_ids()), ("channel", settings.channel_ids())):
        seen: Counter[str] = Counter()
        for index, item_id in enumerate(ids):
            seen[item_id] += 1
            if seen[item_id] == 2:
                problems.append(
                    doc.problem((f"{kind}s", index, "id"), f"duplicate {kind} id {item_id!r}")
                )
    if settings.http is not None and not settings.http.loopback and not settings.http.token:
        problems.append(
            doc.problem(("http", "listen"), "listening beyond loopback requires http.token")
        )
    if settings.public_url is not None and settings.http is None:
        problems.append(
            doc.problem(("public_url",), "public_url needs the HTTP server: set http.listen")
        )
    known = set(settings.channel_ids())
    for index, channel_id in enumerate(settings.notify):
        if channel_id not in known:
            problems.append(doc.problem(("notify", index), f"unknown channel {channel_id!r}"))
    for number, route in enumerate(settings.routes):
        for index, channel_id in enumerate(route.notify):
            if channel_id not in known:
                problems.append(
                    doc.problem(
                        ("routes", number, "notify", index), f"unknown channel {channel_id!r}"
                    )
                )
    return problems


def _template_checks(settings: Settings, doc: yamlfile.Document, folder: Path) -> list[Problem]:
    """A channel's ``template`` must name templates in the folder (compiling them is the app's
    job: see monitor.notify.render.TemplateSet)."""
    known = override_names(folder)
    problems = []
    for index, channel in enumerate(settings.channels):
        name = channel.template
        if name is not None and name not in known:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            message = (
                f"unknown template {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": the templates folder has no {name}.alert.<format>.j2 or "
                f"{name}.digest.<format>.j2"
            )
            problems.append(doc.problem(("channels", index, "template"), message))
    return problems


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make every relative path in the settings relative to ``base`` (the config's folder)."""
    sources = tuple(
        source.model_copy(update={"path": _under(base, source.path)})
        if isinstance(source, FolderSourceSettings)
        else source
        for source in settings.sources
    )
    return settings.model_copy(
        update={
            "rules": _under(base, settings.rules),
            "templates": _under(base, settings.templates),
            "sources": sources,
            "database": resolve_database_url(settings.database, base),
        }
    )


def resolve_database_url(url: str, base: Path) -> str:
    """A relative SQLite path (``sqlite:///data.db``, any driver) -> an absolute path under
    ``base``; in-memory databases, ``file:`` URIs and other URLs unchanged."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url  # load() has reported it already
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not database
        or database.startswith(":memory:")
        or parsed.query.get("uri") == "true"  # SQLite reads a file: URI itself
        or Path(database).is_absolute()
    ):
        return url
    absolute = parsed.set(database=str(_under(base, Path(database))))
    return absolute.render_as_string(hide_password=False)


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()
