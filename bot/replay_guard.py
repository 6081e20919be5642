"""Refusing a signed Slack request that arrives a second time.

Slack's signature proves who sent a request, and its timestamp check refuses one older than
five minutes; inside those five minutes, anyone who captured a request (a logging proxy, a
leaked HAR file) could send it again and click the same button or run the same command twice.
This middleware runs after Bolt has verified the signature and remembers each signature until
its timestamp is stale everywhere.

Where the memory lives: in this process for SQLite (one process), and in addition in the
``seen_slack_request`` table for PostgreSQL, where several replicas behind a load balancer
must refuse a request that one of them has already handled. A signature this process has seen
is refused without asking the database.

Slack's own retries of an event (``X-Slack-Retry-Num``) are new deliveries, sent later with
a new timestamp and therefore a new signature, so they pass. Should a delivery ever reach us
twice byte for byte with a retry header, it is acknowledged (so Slack stops retrying) and not
handled again: a retry header is unsigned, so it must not make a replay do anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from storage import seen_requests
from storage.db import Database

log = logging.getLogger(__name__)

# slack_sdk's SignatureVerifier accepts timestamps up to five minutes either side of now.
SIGNATURE_LIFETIME_SECONDS = 5 * 60
# Replicas' clocks differ a little; remember a signature that much longer than strictly needed.
CLOCK_SKEW_SECONDS = 60
PRUNE_EVERY_SECONDS = 60.0


class SeenSignatures:
    """Signatures with the time (epoch seconds) after which they no longer matter."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, signature: object) -> bool:
        return signature in self._expiry

    def add(self, signature: str, expires_at: float) -> bool:
        """Remember ``signature``; False if it was already remembered."""
        if signature in self._expiry:
            return False
        self._expiry[signature] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, signature))
        return True

    def forget_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, signature = heapq.heappop(self._by_expiry)
            self._expiry.pop(signature, None)


def _header(req: AsyncBoltRequest, name: str) -> str | None:
    values = req.headers.get(name)
    return values[0] if values else None


class ReplayGuard(AsyncMiddleware):
    """Bolt middleware: 401 for a signature already seen within its lifetime."""

    def __init__(self, db: Database | None, *, clock: Callable[[], float] = time.time) -> None:
        """``db``: the shared store for PostgreSQL replicas; None or SQLite keeps it in memory."""
        self._shared = db if db is not None and db.dialect == "postgresql" else None
        self._clock = clock
        self._seen = SeenSignatures()
        self._last_prune = clock()
        self._prune_task: asyncio.Task[None] | None = None

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # the name Bolt passes it by
    ) -> BoltResponse:
        signature = _header(req, "x-slack-signature")
        if req.mode == "socket_mode" or not signature:
            # Socket Mode requests come over our own authenticated WebSocket, unsigned.
            return await next()
        timestamp = _header(req, "x-slack-request-timestamp") or "0"
        if await self.first_sighting(signature, timestamp):
            return await next()
        if _header(req, "x-slack-retry-num") is not None:
            log.info("acknowledged a repeated Slack delivery without handling it again")
            return BoltResponse(status=200, body="")
        log.warning("refused a replayed Slack request (signature already used)")
        return BoltResponse(status=401, body={"error": "replayed request"})

    async def first_sighting(self, signature: str, timestamp: str) -> bool:
        """Whether this is the first time any replica sees ``signature``; remembers it."""
        now = self._clock()
        try:
            signed_at = float(timestamp)
        except ValueError:
            signed_at = now  # Bolt has verified it, so this cannot happen; stay safe anyway
        expires = max(signed_at, now) + SIGNATURE_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS
        self._seen.forget_expired(now)
        if not self._seen.add(signature, expires):
            return False  # the fast path: no database round trip for a local repeat
        if self._shared is None:
            return True
        self._prune_shared_now_and_then(now)
        return await seen_requests.record_first_sighting(
            db=self._shared,
            signature=signature,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    def __len__(self) -> int:
        """How many signatures this process remembers."""
        return len(self._seen)

    def _prune_shared_now_and_then(self, now: float) -> None:
        # Off the ack path: a DELETE must never make a button click wait.
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        if self._prune_task is not None and not self._prune_task.done():
            return
        self._last_prune = now
        self._prune_task = asyncio.create_task(self._prune_quietly())

    async def _prune_quietly(self) -> None:
        try:
            await self.prune()
        except Exception:
            # A later prune catches up; the table only grows a little meanwhile.
            log.warning("could not prune seen Slack requests", exc_info=True)

    async def prune(self) -> None:
        """Forget signatures whose timestamps Slack's verification refuses by now anyway."""
        now = self._clock()
        self._seen.forget_expired(now)
        if self._shared is not None:
            await seen_requests.forget_expired(
                db=self._shared, now=datetime.fromtimestamp(now, UTC)
            )

    async def close(self) -> None:
        task, self._prune_task = self._prune_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
