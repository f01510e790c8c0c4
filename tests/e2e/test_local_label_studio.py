"""`scripts/label-studio.sh start`: restarts on its data folder with the same token, and SIGTERM
stops Label Studio with it (no orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from backend.tools.bench.common import free_port
from tests.support.services import ROOT, wait_until

pytestmark = pytest.mark.e2e


def _start(port: int, data_dir) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.tools.labelstudio_server",
            "start",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    token = None
    deadline = time.monotonic() + 300
    while token is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line or process.poll() is None, "label-studio start exited early"
        if "API token (legacy):" in line:
            token = line.split(":", 1)[1].strip()
    assert token, "no token printed"
    return process, token


def test_restart_on_the_same_data_dir_keeps_the_token_and_sigterm_leaves_no_orphan(tmp_path):
    port, data_dir = free_port(), tmp_path / "ls-data"
    first, token = _start(port, data_dir)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Token {token}"}
    project = requests.post(f"{url}/api/projects", json={"title": "kept"}, headers=headers, timeout=30).json()["id"]
    os.kill(first.pid, signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    wait_until(lambda: _closed(url), 30, "Label Studio to stop with its launcher")
    assert (data_dir / "hitl-credentials.json").stat().st_mode & 0o077 == 0  # owner-only

    second, again = _start(port, data_dir)
    try:
        assert again == token
        listed = requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
        assert project in [p["id"] for p in listed]
    finally:
        os.kill(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    assert data_dir.exists()  # the data folder is kept


def _closed(url: str) -> bool:
    try:
        requests.get(url + "/health", timeout=1)
    except requests.ConnectionError:
        return True
    return False
