"""Each load bench runs end to end at a tiny size and prints its verdict.

The figures themselves are not checked here (they depend on the machine); the benches are run
by hand, at the issue's sizes, for those.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "ack_latency.py": ["--posts", "40", "--levels", "1,3", "--requests", "12"],
    "ingest.py": ["--posts", "40", "--watches", "20"],
    "memory.py": ["--mentions", "400", "--watches", "20", "--feed-posts", "5"],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_runs_at_a_tiny_size(script: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "EARFUL_"))}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *TINY[script]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Target:" in done.stdout and ("MEETS" in done.stdout or "MISSES" in done.stdout)
