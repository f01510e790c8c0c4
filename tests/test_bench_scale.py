"""`hitl bench scale` runs the sync's own steps at each size, asks a real server for /predict alone
and during the largest pool's steps, and ends on the line its figures are quoted from."""

import re
import subprocess

import pytest

from tests.support.services import ROOT, hitl

pytestmark = pytest.mark.tools


def test_bench_scale_times_each_step_and_predict_during_them(tmp_path):
    done = subprocess.run(
        hitl("bench", "scale", "--sizes", "2000,8000", "--predict", "2"),
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HITL_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.match(r"\s*2,000 tasks: lookup .* \(2,000 predictions\)", lines[0]), lines
    assert re.match(r"\s*8,000 tasks: lookup .* \(8,000 predictions\), incremental plan", lines[1]), lines
    figures = dict(pair.split("=") for pair in lines[-1].split())
    assert float(figures["rescore_plan_8000_s"]) > 0 and float(figures["first_plan_8000_s"]) > 0
    alone, during = int(figures["predict_p50_ms"]), int(figures["predict_p50_during_ms"])
    assert 0 < alone <= int(figures["predict_p99_ms"]) and 0 < during <= int(figures["predict_p99_during_ms"])
    assert re.search(r"during the 8,000-task steps p50 \d+ ms, p99 \d+ ms \([1-9]\d* requests\)", done.stdout)
    assert 0.1 < float(figures["serving_peak_gib"]) < 2, figures  # the server holds no pool
