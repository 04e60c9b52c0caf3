"""Atomic file writes: readers (and a process killed mid-write) see the old file or the whole new
one, never a half-written file.

A write that fails (disk full, a file size limit, a read-only file system, no permission, a file
where a directory should be) removes its temp file and raises `WriteError`: an `OSError` (its
`errno` kept, so `except OSError` still catches it) whose message is one line naming the file
and the reason."""

from __future__ import annotations

import errno as errnos
import os
import tempfile
from pathlib import Path

# Out of space, in the three ways a write can run out of it: the disk, a quota, a file size limit.
NO_SPACE = {errnos.ENOSPC, errnos.EDQUOT, errnos.EFBIG}
READ_ONLY = {errnos.EROFS, errnos.EACCES, errnos.EPERM}


class WriteError(OSError):
    """Writing `filename` failed; str() is one line naming it and why (see `describe`)."""

    def __init__(self, code: int | None, strerror: str | None, filename: str, message: str | None = None):
        super().__init__(code, strerror, filename)
        self.message = message or f"cannot write {filename}: {strerror}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # survives pickling (errors cross process boundaries in comparisons)
        return type(self), (self.errno, self.strerror, self.filename, self.message)

    @classmethod
    def of(cls, path: str | os.PathLike, err: OSError) -> "WriteError":
        if isinstance(err, WriteError):
            return err
        return cls(err.errno, err.strerror or str(err), str(path), describe(path, err))


def read_only_reason(path: str | os.PathLike) -> str:
    """Why an existing, unwritable `path` cannot be written: its file system or its permissions."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "on a read-only file system"
    except OSError:
        pass
    return "read-only (no permission to write)"


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """`path` itself or the first of its parents that exists but is not a directory."""
    for p in [Path(path), *Path(path).parents]:
        try:
            if p.exists():
                return None if p.is_dir() else p
        except OSError:
            return None
    return None


def describe(path: str | os.PathLike, err: OSError) -> str:
    """One line: which file could not be written, and why, in words a user can act on."""
    code = err.errno
    if code == errnos.EFBIG:
        return f"file too large while writing {path} (a file size limit was reached)"
    if code == errnos.EDQUOT:
        return f"disk quota exceeded while writing {path}"
    if code == errnos.ENOSPC:
        return f"disk full while writing {path} (no space left on device)"
    if code in (errnos.ENOTDIR, errnos.EEXIST, errnos.EISDIR):
        blocker = file_in_the_way(path)
        if blocker is not None:
            return (f"cannot write {path}: it is a file, not a directory" if blocker == Path(path)
                    else f"cannot write {path}: {blocker} is a file, not a directory")
    if code == errnos.EROFS:
        return f"cannot write {path}: read-only file system"
    if code in (errnos.EACCES, errnos.EPERM):
        return f"cannot write {path}: read-only (no permission to write)"
    return f"cannot write {path}: {err.strerror or err}"


def check_writable_dir(path: str | os.PathLike) -> None:
    """Raise WriteError unless `path` is, or could be created as, a writable directory. Changes
    nothing: the nearest existing ancestor is checked when `path` does not exist yet, so a command
    can refuse before hours of work instead of failing when it saves the results."""
    path = Path(path)
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise WriteError(errnos.ENOTDIR, "Not a directory", str(path),
                         f"cannot write to {path}: it is a file, not a directory" if blocker == path
                         else f"cannot write to {path}: {blocker} is a file, not a directory")
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise WriteError(errnos.EACCES, "Permission denied", str(path),
                         f"cannot write to {path}: {existing} is {read_only_reason(existing)}")


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create directory `path` (and its parents) for writing; WriteError names what prevents it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError.of(path, err) from None
    return path


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write through a temp file in the same directory, fsync, then rename over `path`. On any
    failure the temp file is removed and `path` is left as it was; an OSError becomes WriteError."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is too strict for output files
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise WriteError.of(path, err) from err
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
