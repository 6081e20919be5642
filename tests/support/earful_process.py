"""``earful run`` as a subprocess of the test: started, waited on, killed or stopped at will,
everything it prints kept in a log file.

A file, not a pipe: at DEBUG a busy Earful would fill a pipe's buffer and block.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp


async def healthy(http: aiohttp.ClientSession, base: str) -> bool:
    """Whether the server at ``base`` answers /healthz with 200 (not yet, while it starts)."""
    try:
        async with http.get(base + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@dataclass
class EarfulProcess:
    """``python -m bot run`` with ``env`` (which names its ``PORT``), run in ``cwd``; its
    stdout and stderr go to ``cwd / f"{name}.log"``, appended across restarts."""

    env: dict[str, str]
    cwd: Path
    name: str = "earful"
    process: asyncio.subprocess.Process | None = field(default=None, init=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def events_url(self) -> str:
        return self.base + "/slack/events"

    @property
    def returncode(self) -> int | None:
        """Its exit code; ``None`` while it runs (or before it started)."""
        return None if self.process is None else self.process.returncode

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    async def start(self) -> None:
        """Start it; it is not serving yet (see ``wait_healthy``)."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def wait_healthy(self, *, within: float = 60) -> None:
        """Until /healthz answers 200; fails at once, with the log's tail, if it exits."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process is not None, "not started"
                exited = self.process.returncode is not None
                assert not exited, f"{self.name} exited:\n{self.output(tail=4000)}"
                if await healthy(http, self.base):
                    return
                assert time.monotonic() < deadline, f"{self.name} not healthy in {within}s"
                await asyncio.sleep(0.1)

    async def kill(self) -> int:
        """SIGKILL: no clean-up of any kind. Its exit code (``-SIGKILL``)."""
        assert self.process is not None, "not started"
        self.process.kill()
        return await self.process.wait()

    async def stop(self, *, within: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited ``within`` seconds. Its exit code
        (``None`` if it was never started)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=within)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()

    def output(self, *, tail: int | None = None) -> str:
        """What it printed: all of it, or its last ``tail`` characters."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]
