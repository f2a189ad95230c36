"""HTTP fetching for feeds (and the pages of their items): one polite, bounded GET.

``Fetcher.get(url, ...)`` returns a :class:`Response` (200 with the body, or 304 with none) or
raises :class:`FetchError` whose ``reason`` is a short, fixed slug (for health, logs and metrics)
and whose message says what happened for a person. Nothing else escapes it, whatever the server
does.

The limits, so that no server can hurt the daemon:

* only http and https, on every hop; an https URL never redirects to plain http;
* no private, loopback, link-local, shared or otherwise non-global address on any hop unless the
  caller allows it. Names are checked where they are resolved (in the connector's resolver), so a
  name that resolves to a public address for a check and to a private one for the connection (DNS
  rebinding) is refused too; IP literals, which aiohttp never resolves, are checked per hop here;
* at most ``max_redirects`` redirects, and no URL twice (a loop);
* a connect timeout and a total deadline for the whole exchange, redirects and body included, so a
  server that sends one byte a second is cut off;
* a body cap counted after decompression while streaming: gzip, deflate and brotli are decoded here,
  in bounded steps, so a 10 MB gzip bomb never becomes a gigabyte in memory.

Politeness: conditional requests (If-None-Match, If-Modified-Since), compression, a User-Agent
naming monitor, and per-host and global concurrency limits (a host is the URL's host name: feeds of
one publisher share its limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import brotli
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from monitor import __version__
from monitor.errors import SourceError

USER_AGENT = f"monitor/{__version__} (feed monitoring daemon)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_CHUNK = 64 * 1024
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FetchLimits:
    connect_timeout: float = 10.0
    total_timeout: float = 20.0
    max_body: int = 15 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 50
    per_host: int = 2


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    """200, or 304 (not modified: no body)."""
    url: str
    """The URL that answered, after redirects."""
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    max_age: float | None = None
    """Cache-Control max-age in seconds, when the server set one."""
    permanent_url: str | None = None
    """Where the resource now lives, when every redirect on the way was permanent (301/308)."""
    links: Mapping[str, str] = field(default_factory=dict)
    """rel -> URL from the Link headers (WebSub hubs and topics may be announced there)."""


class FetchError(SourceError):
    """The URL could not be fetched."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class FetchTooLate(FetchError):
    """The request was not sent: it could not have finished by the caller's deadline."""


class BlockedAddress(OSError):
    """Raised inside the connector when a name resolves only to refused addresses."""


def address_allowed(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a public, unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then drops every non-public address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [entry for entry in found if address_allowed(entry["host"])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves to a private or reserved address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _Decoder(Protocol):
    def feed(self, chunk: bytes, room: int) -> bytes: ...

    def finish(self, room: int) -> bytes: ...


class _Identity:
    def feed(self, chunk: bytes, room: int) -> bytes:
        return chunk

    def finish(self, room: int) -> bytes:
        return b""


class _Zlib:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), decoded in bounded steps."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._started = False

    def feed(self, chunk: bytes, room: int) -> bytes:
        if not self._started and not self._gzip and chunk:
            self._started = True
            if chunk[0] & 0x0F != 8:  # not a zlib header: raw deflate
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        # One byte more than there is room for: if it comes out, the body is too large.
        return self._inner.decompress(self._inner.unconsumed_tail + chunk, room + 1)

    def finish(self, room: int) -> bytes:
        out = self._inner.decompress(self._inner.unconsumed_tail, room + 1)
        return out + self._inner.flush() if len(out) <= room else out


class _Brotli:
    def __init__(self) -> None:
        self._inner = brotli.Decompressor()

    def feed(self, chunk: bytes, room: int) -> bytes:
        out: bytes = self._inner.process(chunk, output_buffer_limit=room + 1)
        return out

    def finish(self, room: int) -> bytes:
        out = b""
        while len(out) <= room and not self._inner.is_finished():
            more: bytes = self._inner.process(b"", output_buffer_limit=room + 1 - len(out))
            if not more:
                break
            out += more
        return out


def _decoder(encoding: str) -> _Decoder:
    match encoding.strip().lower():
        case "" | "identity":
            return _Identity()
        case "gzip" | "x-gzip":
            return _Zlib(gzip=True)
        case "deflate":
            return _Zlib(gzip=False)
        case "br":
            return _Brotli()
    raise FetchError("bad_encoding", f"unsupported Content-Encoding {encoding!r}")


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), clamped to 24 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def max_age(cache_control: str | None) -> float | None:
    """The max-age of a Cache-Control header, in seconds (no-store/no-cache give none)."""
    if not cache_control:
        return None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    return None


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), or whose host is a refused IP literal."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise FetchError("bad_url", f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host or "\\" in url:
        raise FetchError("bad_url", "only absolute http:// and https:// URLs are fetched")
    if allow_private:
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: checked by the resolver when it is resolved
    if not address_allowed(host):
        raise FetchError("blocked_address", f"{host} is a private or reserved address")


class Fetcher:
    """One per daemon: its connection pools and limits are shared by every feed.

    Use as an async context manager, or call :meth:`close`.
    """

    def __init__(self, limits: FetchLimits | None = None, user_agent: str = USER_AGENT) -> None:
        self.limits = limits or FetchLimits()
        self.user_agent = user_agent
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._global = asyncio.Semaphore(self.limits.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._host_users: dict[str, int] = {}
        self._requests = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def close_when_idle(self) -> None:
        """Close once no request is in flight (a fetcher replaced by a reload: its requests
        finish first)."""
        await self._idle.wait()
        await self.close()

    @contextlib.contextmanager
    def _request(self) -> Iterator[None]:
        self._requests += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._requests -= 1
            if not self._requests:
                self._idle.set()

    def _session(self, allow_private: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(allow_private)
        if session is None:
            resolver = DefaultResolver() if allow_private else _GuardedResolver()
            connector = aiohttp.TCPConnector(
                limit=0,  # concurrency is limited by our semaphores, before the clock starts
                resolver=resolver,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.limits.connect_timeout),
            )
            self._sessions[allow_private] = session
        return session

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: Mapping[str, str] | None = None,
        allow_private: bool = False,
        start_by: float | Callable[[], float] | None = None,
    ) -> Response:
        """GET ``url`` under the limits (see the module docstring).

        ``start_by`` (a time of the event loop's clock, or a function giving it when the slots
        are free, for a deadline that may move meanwhile): when the slots are only free after
        it, nothing is sent and FetchTooLate is raised (a feed's claim would run out before the
        exchange could finish).
        """
        with self._request():
            return await self._get_limited(
                url,
                etag=etag,
                last_modified=last_modified,
                headers=headers,
                allow_private=allow_private,
                start_by=start_by,
            )

    async def _get_limited(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        headers: Mapping[str, str] | None,
        allow_private: bool,
        start_by: float | Callable[[], float] | None,
    ) -> Response:
        host = (urlsplit(url).hostname or "").lower()
        semaphore = self._hosts.get(host)
        if semaphore is None:
            semaphore = self._hosts[host] = asyncio.Semaphore(self.limits.per_host)
        self._host_users[host] = self._host_users.get(host, 0) + 1
        try:
            # The host's slot first: a fetch waiting for its host must not hold one of the global
            # slots meanwhile, or a hundred feeds of one publisher would stall every other host.
            async with semaphore, self._global:
                deadline = start_by() if callable(start_by) else start_by
                if deadline is not None and asyncio.get_running_loop().time() > deadline:
                    raise FetchTooLate("late", "no fetch slot before the deadline to start")
                async with asyncio.timeout(self.limits.total_timeout):
                    return await self._get(
                        url,
                        etag=etag,
                        last_modified=last_modified,
                        extra=headers or {},
                        allow_private=allow_private,
                    )
        except TimeoutError:
            raise FetchError(
                "timeout", f"no complete answer within {self.limits.total_timeout:g} s"
            ) from None
        finally:
            self._host_users[host] -= 1
            if not self._host_users[host]:
                # Forget idle hosts: thousands of publishers must not leave thousands of objects.
                del self._host_users[host], self._hosts[host]

    async def _get(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        extra: Mapping[str, str],
        allow_private: bool,
    ) -> Response:
        session = self._session(allow_private)
        seen = {url}
        permanent = True
        current = url
        for _hop in range(self.limits.max_redirects + 1):
            check_url(current, allow_private=allow_private)
            request_headers = {
                "User-Agent": self.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate, br",
                **extra,
            }
            if etag:
                request_headers["If-None-Match"] = etag
            if last_modified:
                request_headers["If-Modified-Since"] = last_modified
            with _classified():
                async with session.get(
                    current, headers=request_headers, allow_redirects=False
                ) as response:
                    status = response.status
                    if status in _REDIRECTS:
                        following = _redirect_target(current, status, response.headers, seen)
                        seen.add(following)
                        permanent = permanent and status in _PERMANENT
                        current = following
                        continue
                    return await self._answer(
                        response,
                        current,
                        permanent_url=current if permanent and current != url else None,
                        max_body=self.limits.max_body,
                    )
        raise FetchError("too_many_redirects", f"more than {self.limits.max_redirects} redirects")

    async def _answer(
        self,
        response: aiohttp.ClientResponse,
        url: str,
        *,
        permanent_url: str | None,
        max_body: int,
    ) -> Response:
        status = response.status
        headers = response.headers
        if status == 304:
            return Response(
                304,
                url,
                etag=headers.get("ETag"),
                last_modified=headers.get("Last-Modified"),
                max_age=max_age(headers.get("Cache-Control")),
                permanent_url=permanent_url,
            )
        if status == 410:
            raise FetchError("gone", "HTTP 410 Gone: the feed was removed", status=status)
        if status in (429, 503):
            wait = retry_after(headers.get("Retry-After"))
            reason = "rate_limited" if status == 429 else "unavailable"
            after = f", retry after {wait:.0f} s" if wait is not None else ""
            raise FetchError(reason, f"HTTP {status}{after}", status=status, retry_after=wait)
        if status != 200:
            raise FetchError(
                f"http_{status}", f"HTTP {status} {response.reason or ''}".strip(), status=status
            )
        body = await _read_body(response, max_body)
        return Response(
            200,
            url,
            body=body,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
            content_type=headers.get("Content-Type"),
            max_age=max_age(headers.get("Cache-Control")),
            permanent_url=permanent_url,
            links=link_relations(headers.getall("Link", []), url),
        )

    async def post_form(
        self, url: str, form: Mapping[str, str], *, allow_private: bool = False
    ) -> tuple[int, str]:
        """POST a form (a WebSub subscription request) under the same address and time limits,
        following no redirect; the status and the first 500 characters of the answer."""
        check_url(url, allow_private=allow_private)
        session = self._session(allow_private)
        try:
            with self._request():
                return await self._post_form(session, url, form)
        except TimeoutError:
            raise FetchError(
                "timeout", f"no answer within {self.limits.total_timeout:g} s"
            ) from None

    async def _post_form(
        self, session: aiohttp.ClientSession, url: str, form: Mapping[str, str]
    ) -> tuple[int, str]:
        async with asyncio.timeout(self.limits.total_timeout):
            with _classified():
                async with session.post(
                    url,
                    data=dict(form),
                    headers={"User-Agent": self.user_agent},
                    allow_redirects=False,
                ) as response:
                    body = await _read_body(response, 64 * 1024)
                    return response.status, body.decode("utf-8", "replace")[:500]


@contextlib.contextmanager
def _classified() -> Iterator[None]:
    """Any failure of one HTTP exchange, as a FetchError with its reason."""
    try:
        yield
    except FetchError:
        raise
    except aiohttp.InvalidURL as exc:
        # aiohttp's own refusals, such as an IPv4 address in decimal ("http://2130706433/")
        raise FetchError("bad_url", f"invalid URL: {exc}") from None
    except BlockedAddress as exc:
        raise FetchError("blocked_address", str(exc)) from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchError("tls", f"TLS certificate refused: {exc.certificate_error}") from None
    except aiohttp.ClientSSLError as exc:
        raise FetchError("tls", f"TLS error: {exc}") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress):
            raise FetchError("blocked_address", str(exc.os_error)) from None
        raise FetchError("connection", f"cannot connect: {exc.os_error}") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise FetchError("connection", f"{type(exc).__name__}: {exc}") from None


def link_relations(values: list[str], base: str) -> dict[str, str]:
    """rel -> absolute URL from HTTP Link header values (RFC 8288), the first of each rel."""
    found: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            for param in params.split(";"):
                name, _, rel = param.strip().partition("=")
                if name.strip().lower() == "rel":
                    for each in rel.strip().strip('"').lower().split():
                        found.setdefault(each, urljoin(base, target[1:-1]))
    return found


def _redirect_target(current: str, status: int, headers: Mapping[str, str], seen: set[str]) -> str:
    target = headers.get("Location")
    if not target:
        raise FetchError("bad_redirect", f"HTTP {status} without a Location", status=status)
    following = urljoin(current, target)
    if urlsplit(current).scheme == "https" and following.startswith("http:"):
        raise FetchError("bad_redirect", "redirect from https to plain http refused")
    if following in seen:
        raise FetchError("redirect_loop", "redirect loop", status=status)
    return following


async def _read_body(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The decoded body, or FetchError("too_large") as soon as it passes ``cap`` bytes."""
    declared = response.headers.get("Content-Length", "")
    encoding = response.headers.get("Content-Encoding", "")
    if declared.isdigit() and int(declared) > cap:
        raise FetchError("too_large", f"body of {int(declared):,} bytes exceeds {cap:,}")
    decoder = _decoder(encoding)
    parts: list[bytes] = []
    size = 0
    raw = 0
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            raw += len(chunk)
            if raw > cap:
                raise FetchError("too_large", f"body exceeds {cap:,} bytes")
            out = decoder.feed(chunk, cap - size)
            size += len(out)
            if size > cap:
                raise FetchError("too_large", f"body exceeds {cap:,} bytes after decompression")
            parts.append(out)
        out = decoder.finish(cap - size)
    except (zlib.error, brotli.error) as exc:
        raise FetchError("bad_encoding", f"cannot decode {encoding} body: {exc}") from None
    size += len(out)
    if size > cap:
        raise FetchError("too_large", f"body exceeds {cap:,} bytes after decompression")
    parts.append(out)
    return b"".join(parts)
