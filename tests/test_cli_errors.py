"""CLI failures a user can fix end in one line that says what to fix, never a traceback: an audit
store that cannot be reached or opened, a corrupt meta.json, a Label Studio URL with a wrong path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.support.services import ROOT


def _hitl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stderr + done.stdout
    assert done.returncode != 0 and "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_an_unreachable_audit_store_is_one_line_without_its_password(tmp_path):
    env = {"HITL_DATA_DIR": str(tmp_path), "HITL_AUDIT_DB_URL": "postgresql://hitl:s3cret@127.0.0.1:9/hitl_audit"}
    done = _hitl(env, "report", "--project", "1")
    line = _one_line_error(done)
    assert "audit store postgresql://hitl:***@127.0.0.1:9/hitl_audit cannot be used" in line
    assert "s3cret" not in done.stderr + done.stdout


def test_an_audit_store_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "audit.sqlite3").mkdir()  # not a file SQLite can open
    line = _one_line_error(_hitl({"HITL_DATA_DIR": str(tmp_path)}, "report", "--project", "1"))
    assert "audit store" in line and "HITL_DATA_DIR" in line


def test_a_corrupt_meta_json_is_one_line_naming_it(tmp_path):
    version = tmp_path / "registry" / "1" / "versions" / "v1-20260101000000"
    version.mkdir(parents=True)
    (version / "meta.json").write_text('{"created_at": 17')
    (tmp_path / "registry" / "1" / "CURRENT").write_text("v1-20260101000000\n")
    env = {"HITL_DATA_DIR": str(tmp_path / "data"), "HITL_REGISTRY_DIR": str(tmp_path / "registry")}
    line = _one_line_error(_hitl(env, "models", "list", "--project", "1"))
    assert "meta.json is not valid JSON" in line


class _NotLabelStudio(BaseHTTPRequestHandler):
    """Answers 404: a page (wrong path), or Label Studio's JSON for a missing object."""

    def do_GET(self):
        if self.path.startswith("/api/"):
            status, body, kind = 404, json.dumps({"detail": "Not found."}), "application/json"
        else:
            status, body, kind = 404, "<html><body><h1>Not Found</h1></body></html>", "text/html"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def not_label_studio():
    server = HTTPServer(("127.0.0.1", 0), _NotLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_a_wrong_url_path_is_not_called_a_wrong_project_id(tmp_path, not_label_studio):
    env = {"HITL_DATA_DIR": str(tmp_path), "HITL_LABEL_STUDIO_API_KEY": "token"}
    wrong = _one_line_error(
        _hitl({**env, "HITL_LABEL_STUDIO_URL": not_label_studio + "/label-studio"}, "sync", "--project", "3")
    )
    assert "check the path in HITL_LABEL_STUDIO_URL" in wrong and "project id" not in wrong
    missing = _one_line_error(_hitl({**env, "HITL_LABEL_STUDIO_URL": not_label_studio}, "sync", "--project", "3"))
    assert "check the project id" in missing
