"""Pool workers end with the process that drives the run, however it ends.

A `kill -9` of the driver gives it no chance to shut its pool down, and the workers, now
orphans, would go on mapping points nobody collects. Each worker therefore asks the Linux
kernel to send it SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and, on any
system, watches from a daemon thread for being re-parented or for the driver's pid to go.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 0.5


def tie_to_driver(driver_pid: int) -> None:
    """Make this worker process exit when `driver_pid` (or its own parent) dies."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher below still works
            pass
    if not _alive(driver_pid) or os.getppid() != parent:  # died before prctl took effect
        os._exit(1)
    watcher = threading.Thread(
        target=_watch, args=(driver_pid, parent), name="attnsim-lifeline", daemon=True
    )
    watcher.start()


def _watch(driver_pid: int, parent: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent or not _alive(driver_pid):
            os._exit(1)  # no cleanup to do: the driver owns the store


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (cannot be ours, but alive)
        return True
    return True
