"""Reading /metrics the way Prometheus does: over HTTP, parsed by prometheus-client's parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Samples:
    values: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def get(self, name: str, **labels: str) -> float:
        """A sample's value (0 when the series does not exist yet, as for a fresh counter)."""
        return self.values.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.values}


def parse(text: str) -> Samples:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Samples(values)


async def scrape(http: aiohttp.ClientSession, url: str, *, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        body = await response.text()
        assert response.status == 200, (response.status, body)
    return parse(body)


async def scrape_until(
    http: aiohttp.ClientSession,
    url: str,
    condition: Callable[[Samples], bool],
    *,
    token: str | None = None,
    within: float = 15,
) -> Samples:
    """Scrape until ``condition`` holds, failing with the last scrape after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(http, url, token=token)
        if condition(samples):
            return samples
        assert time.monotonic() < deadline, "metrics never reached the expected values"
        await asyncio.sleep(0.05)
