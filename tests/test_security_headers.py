"""What a browser is told about every answer (no scripts, no framing, no sniffing), what the open
/health says (no paths or error text), and who may read the files the backend writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from backend.oversight.report import write_report
from backend.server import create_app
from backend.serving.predictor import Predictor
from backend.stores.audit import AuditStore
from backend.stores.queue_state import queue_state_location
from backend.stores.registry import Registry
from tests.support.services import ROOT


def test_every_answer_forbids_scripts_framing_and_sniffing(settings):
    client = create_app(settings, predictor=None).test_client()
    for path in ["/dashboard", "/health", "/nope", "/metrics"]:
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY", path


def test_the_written_report_carries_the_same_policy(tmp_path):
    out = tmp_path / "report.html"
    write_report(
        99,
        AuditStore(str(tmp_path / "audit.sqlite3")),
        Registry(tmp_path / "registry"),
        queue_state_location(tmp_path),
        out,
    )
    assert "Content-Security-Policy\" content=\"default-src 'none'" in out.read_text()


def test_the_open_health_shows_no_path_or_error_text(tmp_path, settings):
    broken = settings.model_copy(update={"model_name": str(tmp_path / "secret-folder" / "no-such-model")})
    predictor = Predictor(broken)
    predictor.start(background=False)
    client = create_app(broken, predictor=predictor).test_client()
    health = client.get("/health")
    assert health.json["status"] == "UP" and health.json["encoder_ready"] is False
    assert health.json["encoder_error"] and "secret-folder" not in health.get_data(as_text=True)
    assert "secret-folder" in client.get("/ready").json["encoder"]  # the details, behind authentication


def test_files_the_backend_writes_are_the_owners_only(tmp_path):
    env = {**os.environ, "HITL_DATA_DIR": str(tmp_path / "data"), "HITL_REGISTRY_DIR": str(tmp_path / "registry")}
    done = subprocess.run(
        [sys.executable, "-m", "backend", "report", "--project", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "no versions" in done.stderr  # it created the audit store on its way
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "audit.sqlite3").stat().st_mode) == 0o600
