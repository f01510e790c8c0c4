"""``hitl run``: Redis (embedded unless configured), RQ worker(s), the scheduler and the server, as one job.

Children are stopped together: Ctrl-C or SIGTERM stops all of them, and if one dies the others
are stopped and the exit code says which failed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from backend.services.embedded_redis import EmbeddedRedis
from backend.settings import Settings

log = logging.getLogger(__name__)


class AlreadyRunning(SystemExit):
    """Another ``hitl run`` holds this data folder."""


def hold_run_lock(data_dir: Path) -> IO[str]:
    """One ``hitl run`` per data folder: a second one would share (and on exit remove) the first's
    embedded Redis socket. The lock dies with the process, so a crash never leaves it behind."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "run.lock", "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(
            f"another `hitl run` (pid {owner}) is already using {data_dir}: stop it first (Ctrl-C in its terminal, "
            f"or kill {owner}), or give this one its own HITL_DATA_DIR and HITL_PORT"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def warn_unconfigured(settings: Settings) -> None:
    if not (settings.label_studio_url and settings.label_studio_api_key):
        log.warning("HITL_LABEL_STUDIO_URL / HITL_LABEL_STUDIO_API_KEY are not set: the backend serves predictions, "
                    "but webhooks are dropped and nothing retrains until they point to Label Studio "
                    "(./scripts/label-studio.sh start prints both)")  # fmt: skip


def run_all(settings: Settings, workers: int = 1, serve_workers: int = 1) -> int:
    lock = hold_run_lock(settings.data_dir)  # noqa: F841 - released when this process exits
    warn_unconfigured(settings)
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir / "redis").start()
        env["HITL_REDIS_URL"] = embedded.url
        log.info("embedded Redis at %s (data in %s)", embedded.url, embedded.folder)
    hitl = [sys.executable, "-m", "backend"]
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        for i in range(workers):
            children[f"worker-{i}"] = subprocess.Popen([*hitl, "worker", "--queues", "fast"], env=env)
        # fine-tunes run beside, never in front of, the seconds-long head retrains
        children["worker-slow"] = subprocess.Popen([*hitl, "worker", "--queues", "slow"], env=env)
        children["scheduler"] = subprocess.Popen([*hitl, "scheduler"], env=env)
        children["server"] = subprocess.Popen([*hitl, "serve", "--workers", str(serve_workers)], env=env)
        log.info("running: %s (Ctrl-C stops all)", ", ".join(children))
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    log.error("%s exited with code %s; stopping the rest", name, child.returncode)
                    return child.returncode or 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            embedded.stop()
