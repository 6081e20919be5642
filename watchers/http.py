"""The one way Earful fetches user-supplied URLs: size- and time-capped, and SSRF-guarded.

Feed URLs come from anyone who can type ``/earful watch add``, so every request must be unable
to reach the machine Earful runs on, its private network, or a cloud metadata endpoint. The
guard lives in the DNS resolver handed to aiohttp's connector: the addresses that are checked
are exactly the addresses the socket connects to, so a name that resolves to a public address
when checked and to a private one a moment later (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from yarl import URL

from watchers.base import SourceBlocked, SourceError

DEFAULT_USER_AGENT = "Earful/0.1 (+https://github.com/earful/earful; social listening bot)"
MAX_URL_LENGTH = 2_048
_CHUNK_SIZE = 64 * 1024
ERROR_BODY_CAP = 16 * 1024  # of an error response: enough for any API's error document
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses that mean "you may not read this" rather than "this is broken".
_BLOCKED_STATUSES = frozenset({401, 403, 451})

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    allow_private: bool = False  # only for tests and self-hosted feeds on a trusted network
    timeout_seconds: float = 15
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    # Politeness: at most this many requests per second to one host (bursts of the same size),
    # and this many quick retries on 429/5xx before the poller's longer backoff takes over.
    per_host_rate: float = 1.0
    retries: int = 2
    max_retry_wait: float = 30.0
    retry_base_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class FetchResponse:
    status: int
    url: str  # the final URL, after redirects
    headers: Mapping[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    etag: str | None
    last_modified: str | None
    not_modified: bool


class UnsafeURLError(SourceError):
    """A URL Earful refuses to fetch. The message says which URL and why, for the user."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refusing to fetch {url}: {reason}")
        self.url = url
        self.reason = reason


class HttpBlocked(SourceBlocked):
    """The server refused us (HTTP 401/403/429/451…). ``retry_after`` is in seconds.

    ``headers`` (lower-cased names) and the first ``ERROR_BODY_CAP`` bytes of ``body`` are what
    the server said, for sources whose APIs explain the refusal (an error code, a reset time).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body


class RateLimited(HttpBlocked):
    """The server asked us to slow down (HTTP 429, or 503 with ``Retry-After``)."""


class HttpStatusError(SourceError):
    """Any other HTTP error status (4xx, 5xx), with the headers and start of the body."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body


class ServerError(HttpStatusError):
    """HTTP 5xx: the source is broken for now; worth a retry."""


def address_refusal(address: str) -> str | None:
    """Why ``address`` (an IP literal) must not be connected to, or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that is only a wrapper for an IPv4 one is judged by that one; DNS64
        # networks hand out NAT64 addresses for every IPv4-only host.
        if ip.ipv4_mapped is not None:
            return address_refusal(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return address_refusal(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if tunnelled is not None:
            inner = address_refusal(str(tunnelled))
            if inner is not None:
                return inner
        if ip.scope_id:
            return "link-local"
        ip = ipaddress.IPv6Address(int(ip))  # drop the scope so set membership works
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip in _CGNAT, "carrier-grade NAT"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        # Anything else IANA does not list as globally reachable (documentation ranges…).
        (not ip.is_global, "non-public"),
    )
    for refused, kind in checks:
        if refused:
            return kind
    return None


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_legacy_ipv4(host: str) -> bool:
    """True for forms like ``127.1``, ``2130706433`` or ``0x7f.1`` that resolvers turn into IPs."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def check_url_syntax(url: str, *, allow_private: bool = False) -> str:
    """Return ``url`` normalized, or raise UnsafeURLError saying why it cannot be watched.

    This is the cheap check for instant feedback when a watch is added. IP literals and
    ``localhost`` are refused here too, but names are only checked when they are resolved,
    at fetch time, since what a name resolves to can change.
    """
    shown = url if len(url) <= 200 else url[:200] + "…"
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(shown, f"URLs longer than {MAX_URL_LENGTH} characters are not allowed")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise UnsafeURLError(shown, f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURLError(shown, "only http and https URLs are allowed")
    host = parsed.raw_host
    if not host:
        raise UnsafeURLError(shown, "the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        # Don't echo the password back into a Slack channel.
        raise UnsafeURLError(
            str(parsed.with_user(None)), "URLs with a user name or password are not allowed"
        )
    ip = _ip_literal(host)
    if ip is None:
        host = host.lower()
        if not _HOSTNAME.match(host) or len(host) > 253:
            raise UnsafeURLError(shown, f"{host!r} is not a valid host name")
        if _is_legacy_ipv4(host.rstrip(".")):
            raise UnsafeURLError(shown, "write IP addresses in the usual dotted form")
        if not allow_private and (host.rstrip(".") == "localhost" or host.endswith(".localhost")):
            raise UnsafeURLError(shown, "it points at this machine (localhost)")
    elif not allow_private:
        kind = address_refusal(str(ip))
        if kind is not None:
            raise UnsafeURLError(shown, f"it resolves to a {kind} address ({ip})")
    normalized = str(parsed.with_fragment(None))
    if len(normalized) > MAX_URL_LENGTH:
        raise UnsafeURLError(shown, f"URLs longer than {MAX_URL_LENGTH} characters are not allowed")
    return normalized


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's resolver and refuses names with ANY non-public address.

    Refusing when any address is bad (rather than filtering them out) matters: a name that
    returns both a public and a private address is someone probing, not a feed.
    """

    def __init__(self, *, allow_private: bool = False, inner: AbstractResolver | None = None):
        self._allow_private = allow_private
        self._owns_inner = inner is None
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                kind = address_refusal(result["host"])
                if kind is not None:
                    raise UnsafeURLError(
                        host, f"it resolves to a {kind} address ({result['host']})"
                    )
        return results

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _copy_headers(headers: Mapping[str, str]) -> dict[str, str]:
    copied: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        copied[key] = f"{copied[key]}, {value}" if key in copied else value
    return copied


def _host_of(url: URL) -> str:
    return url.host or url.raw_host or str(url)


class HttpFetcher:
    """Fetches user-supplied URLs under a FetchPolicy, over one shared aiohttp session.

    Safe to use from many tasks at once; close it (or use it as an async context manager)
    when done.
    """

    def __init__(
        self, policy: FetchPolicy | None = None, *, resolver: AbstractResolver | None = None
    ) -> None:
        """``resolver`` does the name lookups (aiohttp's default when None); it is always
        wrapped in a GuardedResolver, so passing one cannot weaken the address check."""
        self.policy = policy if policy is not None else FetchPolicy()
        self._inner_resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._limiters: dict[str, AsyncLimiter] = {}

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily because a ClientSession must be made inside a running event loop.
        if self._session is None or self._session.closed:
            self._resolver = GuardedResolver(
                allow_private=self.policy.allow_private, inner=self._inner_resolver
            )
            connector = aiohttp.TCPConnector(resolver=self._resolver, limit=50, limit_per_host=4)
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The overall deadline is enforced around the whole redirect chain in get().
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.policy.timeout_seconds),
                headers={"User-Agent": self.policy.user_agent},
                # Env proxies would connect somewhere other than the address we checked.
                trust_env=False,
                # Cookies set by one user's feed must never be sent to another's.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
    ) -> FetchResponse:
        """GET ``url`` following redirects, raising SourceError (or a subclass) on failure."""
        return await self.request(
            "GET",
            url,
            params=params,
            headers=headers,
            etag=etag,
            last_modified=last_modified,
            accept=accept,
        )

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> tuple[Any, FetchResponse]:
        """GET a JSON API: the decoded document (None when not modified) and the response.

        An HTML page where JSON was expected is a block page or a login wall, never "no
        results"; a body that is not JSON is an error, not an empty list.
        """
        response = await self.get(
            url,
            params=params,
            headers=headers,
            etag=etag,
            last_modified=last_modified,
            accept="application/json",
        )
        if response.not_modified:
            return None, response
        return decode_json(response), response

    async def post_json(
        self,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, FetchResponse]:
        """POST (a JSON body or a form) and decode a JSON answer; used for API logins."""
        body: bytes
        all_headers = dict(headers or {})
        if form is not None:
            from urllib.parse import urlencode

            body = urlencode(form).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        response = await self.request(
            "POST", url, headers=all_headers, body=body, accept="application/json"
        )
        return decode_json(response), response

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
    ) -> FetchResponse:
        """One logical request: per-host pacing, quick retries on 429/5xx, redirects checked."""
        if params:
            url = str(URL(url).update_query(dict(params)))
        all_headers = {"Accept": accept or "*/*", **dict(headers or {})}
        if etag:
            all_headers["If-None-Match"] = etag
        if last_modified:
            all_headers["If-Modified-Since"] = last_modified
        retrying = AsyncRetrying(
            retry=retry_if_exception(self._worth_retrying),
            stop=stop_after_attempt(self.policy.retries + 1),
            wait=self._retry_wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(method, url, all_headers, body, etag, last_modified)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _worth_retrying(self, error: BaseException) -> bool:
        if isinstance(error, RateLimited):
            # A long Retry-After is the poller's business (it reschedules the watch).
            wait = error.retry_after if error.retry_after is not None else 0
            return wait <= self.policy.max_retry_wait
        return isinstance(error, ServerError)

    def _retry_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = self.policy.retry_base_seconds * 2 ** (state.attempt_number - 1)
        backoff *= 0.5 + random.random()  # jitter, so many watches don't retry in lockstep
        if isinstance(error, RateLimited) and error.retry_after is not None:
            backoff = max(backoff, error.retry_after)
        return min(backoff, self.policy.max_retry_wait)

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResponse:
        await self._limiter_for(url).acquire()
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                return await self._follow(method, url, headers, body, etag, last_modified)
        except TimeoutError:
            raise SourceError(f"timed out after {self.policy.timeout_seconds:g} s") from None

    def _limiter_for(self, url: str) -> AsyncLimiter:
        host = (URL(url).host or "").lower()
        limiter = self._limiters.get(host)
        if limiter is None:
            rate = max(self.policy.per_host_rate, 0.001)
            # A bucket of max(1, rate) tokens refilled at ``rate`` per second.
            capacity = max(1.0, rate)
            limiter = AsyncLimiter(capacity, capacity / rate)
            self._limiters[host] = limiter
        return limiter

    async def _follow(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResponse:
        current = check_url_syntax(url, allow_private=self.policy.allow_private)
        for hop in range(self.policy.max_redirects + 1):
            target = URL(current, encoded=True)
            outcome = await self._request(method, target, headers, body, etag, last_modified)
            if isinstance(outcome, FetchResponse):
                return outcome
            if method != "GET":
                raise SourceError(f"unexpected redirect from {_host_of(target)} for a {method}")
            if hop == self.policy.max_redirects:
                break
            try:
                next_url = str(target.join(URL(outcome)))
            except ValueError:
                raise SourceError(
                    f"bad redirect from {_host_of(target)}: {outcome[:200]}"
                ) from None
            # Every hop gets the full check: a public feed may redirect to file:// or 10.0.0.1.
            current = check_url_syntax(next_url, allow_private=self.policy.allow_private)
        raise SourceError(f"too many redirects (more than {self.policy.max_redirects})")

    async def _request(
        self,
        method: str,
        target: URL,
        headers: dict[str, str],
        body: bytes | None,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResponse | str:
        """One request: the final response, or the Location of a redirect to follow."""
        host = _host_of(target)
        try:
            async with self._get_session().request(
                method, target, headers=headers, data=body, allow_redirects=False
            ) as resp:
                if resp.status in _REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    if not location:
                        raise SourceError(f"HTTP {resp.status} from {host} without a Location")
                    return location
                return await self._finish(resp, target, etag, last_modified)
        except UnsafeURLError as exc:
            # Raised by the resolver, which only knows the host: name the URL instead.
            raise UnsafeURLError(str(target), exc.reason) from None
        except aiohttp.ClientConnectorDNSError:
            raise SourceError(f"could not resolve {host}") from None
        except aiohttp.ClientConnectorCertificateError:
            raise SourceError(f"bad TLS certificate at {host}") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise SourceError(f"could not connect to {host}: {reason}") from None
        except aiohttp.ServerTimeoutError:
            raise SourceError(f"timed out after {self.policy.timeout_seconds:g} s") from None
        except aiohttp.InvalidURL:
            raise UnsafeURLError(str(target), "not a valid URL") from None
        except aiohttp.ClientPayloadError:
            raise SourceError(f"connection to {host} broke mid-response") from None
        except aiohttp.ClientResponseError as exc:
            raise SourceError(f"invalid HTTP response from {host} ({exc.message})") from None
        except aiohttp.ClientError as exc:
            raise SourceError(f"request to {host} failed ({exc})") from None

    async def _finish(
        self,
        resp: aiohttp.ClientResponse,
        target: URL,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResponse:
        host = _host_of(target)
        status = resp.status
        if status == 304:
            return FetchResponse(
                status=status,
                url=str(target),
                headers=_copy_headers(resp.headers),
                body=b"",
                # A 304 may omit validators; the ones we sent are still the current ones.
                etag=resp.headers.get("ETag") or etag,
                last_modified=resp.headers.get("Last-Modified") or last_modified,
                not_modified=True,
            )
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status >= 400:
            headers = _copy_headers(resp.headers)
            body = await self._error_body(resp)
            if status == 429 or (status == 503 and retry_after is not None):
                raise RateLimited(
                    f"rate limited by {host} (HTTP {status}"
                    + (f", retry after {retry_after:.0f} s)" if retry_after is not None else ")"),
                    status=status,
                    retry_after=retry_after,
                    headers=headers,
                    body=body,
                )
            if status in _BLOCKED_STATUSES:
                raise HttpBlocked(
                    f"HTTP {status} from {host} (blocked or login wall?)",
                    status=status,
                    retry_after=retry_after,
                    headers=headers,
                    body=body,
                )
            if status >= 500:
                raise ServerError(
                    f"HTTP {status} from {host}", status=status, headers=headers, body=body
                )
            raise HttpStatusError(
                f"HTTP {status} from {host}", status=status, headers=headers, body=body
            )
        if not 200 <= status < 300:
            raise SourceError(f"unexpected HTTP {status} from {host}")
        body = await self._read_capped(resp)
        return FetchResponse(
            status=status,
            url=str(target),
            headers=_copy_headers(resp.headers),
            body=body,
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            not_modified=False,
        )

    async def _error_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The start of an error response's body; a broken one is no reason to hide the status."""
        try:
            return await resp.content.read(ERROR_BODY_CAP)
        except aiohttp.ClientError:
            return b""

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.policy.max_bytes
        too_large = SourceError(f"response larger than {cap} bytes")
        # Content-Length counts encoded bytes; the loop below still caps what gzip expands to.
        if resp.content_length is not None and resp.content_length > cap:
            raise too_large
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
            body += chunk
            if len(body) > cap:
                raise too_large
        return bytes(body)


MAX_JSON_DEPTH = 64


def decode_json(response: FetchResponse) -> Any:
    """Decode a JSON body, telling block pages and broken bodies apart from real answers."""
    host = URL(response.url).host or response.url
    content_type = response.headers.get("content-type", "").lower()
    head = response.body[:512].lstrip().lower()
    if "html" in content_type or head.startswith((b"<!doctype html", b"<html")):
        raise SourceBlocked(
            f"got an HTML page from {host} instead of JSON (blocked or login wall?)"
        )
    try:
        document = json.loads(response.body)
    except RecursionError:
        raise SourceError(f"JSON from {host} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"malformed JSON from {host}: {str(exc)[:120]}") from None
    if nested_deeper_than(document, MAX_JSON_DEPTH):
        raise SourceError(f"JSON from {host} is nested too deeply")
    return document


def nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether ``document`` nests lists/objects more than ``limit`` deep. Iterative, so a
    hostile document cannot exhaust the stack while being checked (sources and Slack alike)."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return False
