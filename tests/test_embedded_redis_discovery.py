"""``hitl run`` starts an embedded Redis whose URL only its log says; the CLI (``hitl report``,
``hitl models``) finds it from the data folder, alive by a PING on its socket, when HITL_REDIS_URL is unset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend.ids import JobKind
from backend.jobs.queue import RetrainQueue
from backend.services.embedded_redis import EmbeddedRedis, folder_of, live_url
from backend.settings import Settings
from backend.stores.audit import AuditStore
from tests.support.services import ROOT

PROJECT = 7


def _report(data_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HITL_REDIS_URL"}
    out = data_dir / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "backend", "report", "--project", str(PROJECT), "--out", str(out)],
        env={**env, "HITL_DATA_DIR": str(data_dir)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text()


def test_report_reads_the_retrain_queue_of_the_live_embedded_redis(tmp_path: Path) -> None:
    AuditStore.from_settings(Settings(data_dir=tmp_path)).record_event("retrain", PROJECT, [1], "published")
    with EmbeddedRedis(folder_of(tmp_path)) as embedded:  # as `hitl run` starts it for this data folder
        assert live_url(tmp_path) == embedded.url
        RetrainQueue(Settings(data_dir=tmp_path, redis_url=embedded.url)).request(PROJECT, JobKind.HEAD)
        page = _report(tmp_path)
        assert "head queued" in page and "no queue configured" not in page
    assert live_url(tmp_path) is None  # stopped: its socket is gone or answers nothing
    assert "no queue configured" in _report(tmp_path)


def test_a_socket_nothing_answers_on_is_not_used(tmp_path: Path) -> None:
    import socket

    folder_of(tmp_path).mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(folder_of(tmp_path) / "redis.sock"))  # a dead server's socket file: bound, not listening
    try:
        assert live_url(tmp_path) is None
    finally:
        stale.close()
