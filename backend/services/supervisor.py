"""``hitl run``: Redis (embedded unless configured), RQ worker(s), the scheduler and the server, as one job.

Children are stopped together: Ctrl-C or SIGTERM stops all of them, and if one dies the others
are stopped and the exit code says which failed. They also die with the supervisor itself, even
when it is killed with ``kill -9`` (``services/children.py``), and the run lock records them, so a
later run never starts a second Redis on their files while they still run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from backend.services.children import start_time, tied_to_this_process, wait_gone
from backend.services.embedded_redis import EmbeddedRedis, RedisUnavailable, folder_of
from backend.settings import Settings

log = logging.getLogger(__name__)


class AlreadyRunning(SystemExit):
    """Another ``hitl run`` holds this data folder."""


LEFTOVER_WAIT_S = 30.0  # a dead run's processes got SIGTERM with its death: time to finish stopping


class RunLock:
    """One ``hitl run`` per data folder: a second one would share (and on exit remove) the first's
    embedded Redis socket. The flock dies with the process; the file keeps the pid and start time of
    each child, so a run that finds the lock free still waits for a dead owner's processes to be gone."""

    def __init__(self, data_dir: Path, handle: IO[str]) -> None:
        self.data_dir = data_dir
        self.handle = handle
        self.processes: dict[str, list[int | str | None]] = {}

    def record(self, name: str, pid: int) -> None:
        self.processes[name] = [pid, start_time(pid)]
        self._write()

    def _write(self) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "processes": self.processes}))
        self.handle.flush()


def hold_run_lock(data_dir: Path, wait_s: float = LEFTOVER_WAIT_S) -> RunLock:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "run.lock", "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = _recorded(handle.read())[0] or "?"
        handle.close()
        raise AlreadyRunning(
            f"another `hitl run` (pid {owner}) is already using {data_dir}: stop it first (Ctrl-C in its terminal, "
            f"or kill {owner}), or give this one its own HITL_DATA_DIR and HITL_PORT"
        ) from None
    handle.seek(0)
    owner, leftovers = _recorded(handle.read())
    if leftovers:
        names = {pid: name for name, (pid, _) in leftovers.items()}
        left = wait_gone(list(leftovers.values()), wait_s)
        if left:
            handle.close()
            listed = ", ".join(f"{names[pid]} (pid {pid})" for pid in left)
            raise AlreadyRunning(
                f"a `hitl run` (pid {owner}) that ended without stopping its processes left {listed} running on "
                f"{data_dir}: stop them (kill {' '.join(map(str, left))}) and start again"
            )
        log.info("the processes of an earlier `hitl run` (pid %s) on %s are gone", owner, data_dir)
    lock = RunLock(data_dir, handle)
    lock._write()
    return lock


def _recorded(text: str) -> tuple[str, dict[str, tuple[int, str]]]:
    """(owner pid, {child name: (pid, start time)}) from a run lock's text; an older lock holds only the pid."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip(), {}
    if not isinstance(data, dict):
        return str(data), {}
    processes = {}
    for name, value in (data.get("processes") or {}).items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str):
            processes[str(name)] = (value[0], value[1])
    return str(data.get("pid", "?")), processes


def warn_unconfigured(settings: Settings) -> None:
    if not (settings.label_studio_url and settings.label_studio_api_key):
        log.warning(
            "HITL_LABEL_STUDIO_URL / HITL_LABEL_STUDIO_API_KEY are not set: the backend serves predictions, "
            "but webhooks are dropped and nothing retrains until they point to Label Studio "
            "(./scripts/label-studio.sh start prints both)"
        )


STOP_TIMEOUT_S = 30.0  # per piece: a worker finishes its job's step, gunicorn its requests


def stop_in_order(children: dict[str, subprocess.Popen[bytes]], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """The server first (no new webhooks or predictions), then the workers together, then the scheduler;
    the caller stops Redis last, once nothing uses it. One log line per piece."""
    order = [["server"], [n for n in children if n.startswith("worker")], ["scheduler"]]
    for names in ([n for n in group if n in children] for group in order):
        for name in names:
            if children[name].poll() is None:
                children[name].send_signal(signal.SIGTERM)
        started = time.monotonic()
        for name in names:
            try:
                children[name].wait(timeout=max(0.1, timeout_s - (time.monotonic() - started)))
                how = f"exit {children[name].returncode}"
            except subprocess.TimeoutExpired:
                children[name].kill()
                children[name].wait()
                how = f"killed after {timeout_s:.0f} s"
            log.info("stopped %s (%s) in %.1f s", name, how, time.monotonic() - started)


def run_all(settings: Settings, workers: int = 1, serve_workers: int = 1) -> int:
    lock = hold_run_lock(settings.data_dir)  # released when this process exits
    warn_unconfigured(settings)
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    if not settings.redis_url:
        try:
            embedded = EmbeddedRedis(folder_of(settings.data_dir)).start()
        except RedisUnavailable as exc:
            raise SystemExit(f"error: embedded Redis: {exc}") from None
        assert embedded.process is not None
        lock.record("redis", embedded.process.pid)
        env["HITL_REDIS_URL"] = embedded.url
        log.info("embedded Redis at %s (data in %s)", embedded.url, embedded.folder)
    hitl = [sys.executable, "-m", "backend"]
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    def _start(name: str, *args: str) -> None:
        # dies with this process, even by kill -9; not in the terminal's group: Ctrl-C reaches us only
        children[name] = subprocess.Popen([*hitl, *args], env=env, preexec_fn=tied_to_this_process())
        lock.record(name, children[name].pid)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        for i in range(workers):
            _start(f"worker-{i}", "worker", "--queues", "fast")
        # fine-tunes run beside, never in front of, the seconds-long head retrains
        _start("worker-slow", "worker", "--queues", "slow")
        _start("scheduler", "scheduler")
        _start("server", "serve", "--workers", str(serve_workers))
        log.info("running: %s (Ctrl-C stops all)", ", ".join(children))
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    log.error("%s exited with code %s; stopping the rest", name, child.returncode)
                    return child.returncode or 1
            time.sleep(0.5)
        return 0
    finally:
        stop_in_order(children)
        if embedded:
            started = time.monotonic()
            embedded.stop()
            log.info("stopped embedded Redis in %.1f s", time.monotonic() - started)
