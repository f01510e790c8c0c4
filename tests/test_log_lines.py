"""Log lines people read: RQ's registry cleaning (every 30 s per worker) only at DEBUG, and every
line of the server, gunicorn's start and shutdown lines included, in one format with a timestamp."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from backend.tools.bench.common import free_port, wait_http
from tests.support.services import Proc, hitl

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+ \[")


def _burst_worker(redis_server, tiny_encoder_dir: Path, tmp_path: Path, level: str) -> str:
    env = {
        "HITL_REDIS_URL": redis_server.url,
        "HITL_QUEUE_NAME": f"noise-{time.time_ns()}",
        "HITL_SLOW_QUEUE_NAME": f"noise-slow-{time.time_ns()}",
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_DATA_DIR": str(tmp_path),
        "HITL_LOG_LEVEL": level,
    }
    worker = Proc(f"worker-{level}", hitl("worker", "--burst"), env, tmp_path)
    try:
        assert worker.process.wait(timeout=120) == 0, worker.log_tail()
    finally:
        worker.stop()
    return worker.log_tail(20000)


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_registry_cleaning_is_logged_at_debug_only(redis_server, tiny_encoder_dir: Path, tmp_path: Path) -> None:
    info = _burst_worker(redis_server, tiny_encoder_dir, tmp_path, "INFO")
    assert "listening on" in info and "cleaning registries" not in info, info
    debug = _burst_worker(redis_server, tiny_encoder_dir, tmp_path, "DEBUG")
    assert re.search(r"DEBUG rq\.worker \[-\] Worker \S+: cleaning registries", debug), debug


def test_every_server_line_has_the_same_timestamped_format(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {"HITL_MODEL_NAME": str(tiny_encoder_dir), "HITL_DATA_DIR": str(tmp_path), "HITL_PORT": str(port)}
    server = Proc("serve", hitl("serve"), env, tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, server.process)
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    lines = [line for line in server.log_tail(20000).splitlines() if line.strip()]
    assert any("Shutting down" in line for line in lines), lines
    unstamped = [line for line in lines if not STAMPED.match(line)]
    assert not unstamped, unstamped
