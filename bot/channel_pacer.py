"""Slack's posting limits, per channel: about one message a second, and none while paused.

Slack rate-limits ``chat.postMessage`` per channel ("1 per second per channel, short bursts
allowed") and answers 429 with ``Retry-After`` when a channel is over it. A 429 pauses that
channel only; every other channel goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta


class ChannelPaused(Exception):
    """Slack asked us to wait before posting to this channel again."""

    def __init__(self, channel: str, *, left: timedelta) -> None:
        super().__init__(
            f"Slack rate-limited {channel}; posting again in {left.total_seconds():.0f}s"
        )
        self.channel = channel
        self.left = left


class ChannelPacer:
    def __init__(self, interval: float, *, clock: Callable[[], datetime]) -> None:
        self._interval = interval
        # The pause uses the delivery's clock, like the outbox's next_attempt_at it matches.
        self._clock = clock
        self._next_slot: dict[str, float] = {}  # time.monotonic() of the channel's next post
        self._paused_until: dict[str, datetime] = {}

    def pause(self, channel: str, *, seconds: float) -> None:
        until = self._clock() + timedelta(seconds=seconds)
        self._paused_until[channel] = max(until, self._paused_until.get(channel, until))

    def paused_for(self, channel: str) -> timedelta | None:
        until = self._paused_until.get(channel)
        if until is None:
            return None
        left = until - self._clock()
        if left <= timedelta(0):
            del self._paused_until[channel]
            return None
        return left

    def check(self, channel: str) -> None:
        """``ChannelPaused`` while Slack's pause of the channel lasts."""
        left = self.paused_for(channel)
        if left is not None:
            raise ChannelPaused(channel, left=left)

    async def turn(self, channel: str) -> None:
        """Wait for the channel's next slot; ``ChannelPaused`` while Slack's pause lasts.

        The slot is reserved before sleeping, so posters sharing a channel queue up one
        interval apart instead of all waking at once; the next slot counts from when this
        one actually woke, so a late wake-up never brings two posts closer together.
        """
        self.check(channel)
        now = time.monotonic()
        slot = max(now, self._next_slot.get(channel, now))
        self._next_slot[channel] = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
            # Another poster to this channel may have been answered 429 meanwhile.
            self.check(channel)
        woke = time.monotonic()
        self._next_slot[channel] = max(self._next_slot[channel], woke + self._interval)
