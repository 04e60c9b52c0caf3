"""The run directory's lock: one writing process at a time.

A store that writes (`RunStore.open_or_create` / `open_existing`: search, check, evaluate) holds an
exclusive `flock` on `RUN/.lock` until it is closed or its process ends (the kernel drops the lock
of a dead process, even after `kill -9`, so a lock is never stale). The file holds the holder's pid,
host, command and start time, for the message the next process gets:

    run directory runs/x is in use by pid 4242 on host-a (lossgen search --run-dir runs/x) since 2024-05-01 10:00:00

Readers (`RunStore.open_readonly`: report, export, comparisons' measures) take no lock: SQLite's
WAL keeps their reads consistent while a search writes. Within one process the lock is re-entrant
(a process does not lock itself out); a forked child does not inherit it. The file is never
deleted: removing a lock file while another process waits on it lets two processes hold "the" lock.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

LOCK_FILE = ".lock"

# realpath of the run directory -> [fd, holders, pid]: the locks this process holds
_HELD: dict[str, list] = {}


class LockedError(Exception):
    """The run directory is locked by another process; str() names it."""


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name or "python"
    return shlex.join(argv)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info['host']} ({info['command']}) since {since}"
    except (OSError, ValueError, KeyError, TypeError):  # written a moment from now, or by hand
        return "another process"


def acquire(path: Path) -> str | None:
    """Lock run directory `path` for this process; returns the key to `release` it (None where
    locks are not available). LockedError names the holder; OSError when the lock file cannot be
    created (a read-only directory: callers check that first)."""
    if fcntl is None:
        return None
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is not None and held[2] == os.getpid():
        held[1] += 1
        return key
    fd = os.open(Path(path) / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(fd)
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockedError(f"run directory {path} is in use by {holder}; wait for it to finish or stop it") from None
        raise
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "since": time.time()})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (info + "\n").encode("utf-8"), 0)
    except OSError:  # a full disk: the lock holds all the same, the next process just learns less
        pass
    _HELD[key] = [fd, 1, os.getpid()]
    return key


@atexit.register
def _release_all() -> None:
    """At exit (also after a one-line error that skipped `close`): leave no holder's details behind."""
    for key in list(_HELD):
        _HELD[key][1] = 1
        release(key)


def release(key: str | None) -> None:
    """Release one hold of `acquire`; the lock goes when the last one is released."""
    held = _HELD.get(key) if key is not None else None
    if held is None:
        return
    if held[2] != os.getpid():  # inherited through fork: the lock belongs to the parent
        _HELD.pop(key, None)
        return
    held[1] -= 1
    if held[1] > 0:
        return
    _HELD.pop(key, None)
    fd = held[0]
    try:
        os.ftruncate(fd, 0)  # nobody holds it now
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
