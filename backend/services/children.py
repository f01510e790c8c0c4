"""Child processes that cannot outlive ``hitl run``, and how to tell whether a recorded one still runs.

A supervisor killed with ``kill -9`` runs no clean-up: without help its Redis, workers and server
would keep running (the server still answering Label Studio) after its run lock is gone. On Linux
each child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``); the run lock
records the children (pid and start time) so a later run waits for them to be gone before it
touches their files.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def tied_to_this_process(own_group: bool = True) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when this process dies (Linux; the death signal fires
    when the *thread* that forked exits, so start children from a thread that lives as long as they
    should), and with ``own_group`` it leaves the terminal's process group, so a Ctrl-C reaches only
    the supervisor, which then stops the children in order."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if own_group:
            os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request above: it will never fire
            os._exit(1)

    return preexec


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) from /proc, or None when no such process runs
    (zombies count as gone). Together with the pid it names one process: pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, starttime 22
    return None if fields[0] in ("Z", "X") else fields[19]


def still_running(recorded: Iterable[tuple[int, str]]) -> list[int]:
    """The recorded (pid, start time) processes that are still the same processes and still alive."""
    return [pid for pid, started in recorded if started and start_time(pid) == started]


def wait_gone(recorded: list[tuple[int, str]], timeout_s: float) -> list[int]:
    """Wait up to ``timeout_s`` for recorded processes to exit; the pids still running then."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = still_running(recorded)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)
