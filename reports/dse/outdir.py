"""A run's output folder: made ready (or refused with a clear reason) and locked while in use.

`open_out_dir` creates the folder, refuses a path that names a file or cannot be written,
and takes an exclusive `fcntl.flock` on `DIR/.attnsim.lock` for as long as the run holds it,
so a second run into the same folder stops at once, naming the run that holds it. The lock
is the kernel's: it goes with the process that held it, however that process ends (a
`kill -9` leaves no stale lock behind).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attnsim.reports.errors import UsageError

LOCK_NAME = ".attnsim.lock"


class OutDirError(UsageError):
    """The output folder cannot be used: the message says why and what to do."""


@contextmanager
def open_out_dir(out_dir: str | Path) -> Iterator[Path]:
    """`out_dir`, created and locked for this process until the block ends."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutDirError(f"--out {out}: is a file, not a folder; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"--out {out}: cannot write there ({reason}); choose another folder"
        raise OutDirError(message) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise OutDirError(
                f"--out {out}: another `attnsim run` is writing there ({holder}); wait for it "
                "to finish, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()}, since {since}\n".encode(), 0)
        yield out
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_locked(out_dir: str | Path) -> bool:
    """Whether a process holds `out_dir`'s lock now."""
    path = Path(out_dir) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
