"""Kill-and-resume harness shared by the run-store and search tests: run a script that commits
rounds to a run directory, and SIGKILL it once it has committed a given number of them."""

import os
import signal
import sqlite3
import subprocess
import sys
import time


def committed_rounds(path) -> int:
    """Rounds committed to the run directory `path` so far (0 while its database is absent or busy)."""
    db = path / "run.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as conn:
            return conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    except sqlite3.Error:
        return 0


def run_script(script: str, path, *args, kill_after: int | None = None, delay: float = 0.0,
               timeout: float = 300.0) -> None:
    """Run `python -c script path *args` to the end (it must exit 0 within `timeout` s), or SIGKILL
    it `delay` s after it has committed `kill_after` rounds (or finished, or 120 s passed)."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), *map(str, args)])
    if kill_after is None:
        assert proc.wait(timeout=timeout) == 0
        return
    deadline = time.monotonic() + 120
    while committed_rounds(path) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
