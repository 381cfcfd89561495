"""One measurement in a fresh Python process, so that its peak memory, allocator and threads are
its own: the benchmark runs itself with ``--one ...`` and reads the JSON object that run prints
last."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def in_fresh_process(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python script --one *args`` and return the JSON object it printed last; a failed run
    ends the benchmark with its error output."""
    done = subprocess.run([sys.executable, script, "--one", *args], capture_output=True,
                          text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{script} --one {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
