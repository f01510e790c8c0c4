"""Two `hitl serve` instances on one machine share nothing: gunicorn (25.1+) would give both the
same per-user control socket (~/.gunicorn/gunicorn.ctl), and the second replaced the first one's."""

from __future__ import annotations

import os

import pytest
import requests

from tests.support.services import start_backend


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_two_instances_open_no_shared_control_socket(tmp_path, tiny_encoder_dir):
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(tmp_path / "no-such-runtime-dir"),
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
    }
    first, first_url = start_backend({**env, "HITL_DATA_DIR": str(tmp_path / "a")}, tmp_path)
    try:
        second, _ = start_backend({**env, "HITL_DATA_DIR": str(tmp_path / "b")}, tmp_path)
        try:
            assert not [str(p) for p in home.rglob("*.ctl")], "a control socket shared by every instance"
        finally:
            second.stop()
        assert requests.get(first_url + "/health", timeout=5).json()["status"] == "UP"
    finally:
        first.stop()
    assert not os.path.exists(home / ".gunicorn" / "gunicorn.ctl")
