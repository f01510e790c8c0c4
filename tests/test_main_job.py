"""The README's main job: `hitl run` brings up embedded Redis, a worker and the server as one."""

import os
import signal
import subprocess
import sys

import pytest
import redis
import requests
from rq import Worker

from backend.tools.bench.common import free_port, wait_http
from tests.support.payloads import annotation_event
from tests.support.services import ROOT, wait_until


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_hitl_run_serves_queues_and_stops_cleanly(tmp_path, tiny_encoder_dir):
    port = free_port()
    env = {
        **os.environ,
        "HITL_PORT": str(port),
        "HITL_DATA_DIR": str(tmp_path),
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    env.pop("HITL_REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "run"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 90, process)
        assert requests.get(url + "/health", timeout=2).json()["status"] == "UP"
        # without Label Studio configured no project can be confirmed, so nothing is queued, and the
        # answer says what to set; the embedded Redis is up and a worker listens on it
        answer = requests.post(url + "/webhook", json=annotation_event(project=3), timeout=5).json()
        assert answer["status"] == "dropped" and "HITL_LABEL_STUDIO_URL" in answer["reason"]
        assert (tmp_path / "redis" / "redis.sock").exists()
        connection = redis.Redis(unix_socket_path=str(tmp_path / "redis" / "redis.sock"))
        wait_until(lambda: Worker.all(connection=connection), 60, "an RQ worker registered in the embedded Redis")

        def workers() -> int:
            alive = requests.get(url + "/ready", timeout=5).json().get("workers")
            return alive if isinstance(alive, int) else 0  # "none alive: ..." until the first registers

        assert wait_until(lambda: workers() >= 2, 60, "/ready counting the fast and the slow worker")
        assert (tmp_path / "redis" / "appendonlydir").exists()  # accepted jobs survive a restart
        # a second `hitl run` on the same folder is refused and leaves the first one working
        second = subprocess.run(
            [sys.executable, "-m", "backend", "run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 1 and "another `hitl run`" in second.stderr and "Traceback" not in second.stderr
        assert (tmp_path / "redis" / "redis.sock").exists() and connection.ping()
        assert requests.get(url + "/health", timeout=2).json()["status"] == "UP"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 0, output[-3000:]
    assert "scheduler" in output  # the scheduler ran beside the worker and the server
    assert "embedded Redis" in output
