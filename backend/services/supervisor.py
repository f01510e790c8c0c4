"""``hitl run``: Redis (embedded unless configured), RQ worker(s), the scheduler and the server, as one job.

Children are stopped together: Ctrl-C or SIGTERM stops all of them, and if one dies the others
are stopped and the exit code says which failed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from backend.services.embedded_redis import EmbeddedRedis
from backend.settings import Settings

log = logging.getLogger(__name__)


def run_all(settings: Settings, workers: int = 1, serve_workers: int = 1) -> int:
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
