"""The long-lived process starts without the heavy libraries only some jobs need.

matplotlib (digest charts), scipy (spike tests; datasketch's LSH imports it too) and datasketch
(signatures are made in the scoring pool) are imported where they are used. Imported at
start-up they were some 100 MB of every running Earful's memory (see bench/memory.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "PIL", "scipy", "datasketch")


def test_starting_earful_imports_none_of_the_heavy_libraries() -> None:
    code = (
        "import json, sys\n"
        "import bot.runtime, bot.cli\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
