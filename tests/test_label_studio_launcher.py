"""`scripts/label-studio.sh start` (``backend/tools/labelstudio_server.py``): it refuses a port
something listens on (it once took a stub server there for its own Label Studio), refuses a data
folder a running instance holds, and keeps the admin's password and token off every command line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.tools.bench.common import free_port
from backend.tools.labelstudio_server import LocalLabelStudio
from tests.support.services import ROOT


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # answers 200 to everything, /health and /api/projects too
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _launch(port: int, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
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
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_something_listens_on_is_refused(tmp_path: Path) -> None:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        done = _launch(stub.server_address[1], tmp_path / "ls")
    finally:
        stub.shutdown()
        stub.server_close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {stub.server_address[1]} on 127.0.0.1 is already in use" in done.stderr, done.stderr
    assert "Label Studio 1.23.2 at" not in done.stdout  # never reported the stub as its own
    assert time.monotonic() - started < 30


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_a_second_instance_on_a_data_folder_is_refused_and_no_secret_is_on_a_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "ls"
    first = LocalLabelStudio.start(data_dir=data_dir)
    try:
        done = _launch(free_port(), data_dir)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"another Label Studio uses {data_dir}" in done.stderr, done.stderr
        assert first.process.poll() is None  # the first one runs on
        command_lines = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "label-studio start" in command_lines and str(data_dir) in command_lines
        assert first.password not in command_lines and first.token not in command_lines
    finally:
        first.stop()
    again = LocalLabelStudio.start(data_dir=data_dir)  # stopped: the folder is free again
    again.stop()
