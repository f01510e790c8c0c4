"""`hitl simulate` on a NER dataset (WNUT-17 slice, tiny encoder): curves, summary and plot."""

import csv
import json

import pytest

from backend.cli.main import main
from backend.settings import get_settings
from tests.support.data import data_dir

pytestmark = pytest.mark.tools  # a replay or benchmark: ./scripts/test.sh --quick leaves it out


def test_simulate_detects_ner_data_and_replays_the_loop(tmp_path, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("HITL_MODEL_NAME", str(tiny_encoder_dir))
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    out = tmp_path / "out"
    try:
        code = main(
            [
                "simulate",
                "--dataset",
                str(data_dir() / "wnut17"),
                "--budget",
                "90",
                "--step",
                "20",
                "--start",
                "30",
                "--seeds",
                "2",
                "--pool-size",
                "300",
                "--test-size",
                "100",
                "--out",
                str(out),
            ]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    with open(out / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["strategy"], r["seed"]) for r in rows} == {
        ("margin", "0"),
        ("margin", "1"),
        ("random", "0"),
        ("random", "1"),
    }
    assert [int(r["labels"]) for r in rows if r["strategy"] == "margin" and r["seed"] == "0"] == [30, 50, 70, 90]
    assert all(0.0 <= float(r["f1"]) <= 1.0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "entity-level exact F1" and set(summary["strategies"]) == {"margin", "random"}
    assert (out / "learning_curves.png").stat().st_size > 10_000
    assert "labels to reach random's final" in (out / "summary.md").read_text()
    assert list((tmp_path / "cache").glob("word-states-*.sqlite3"))  # word states went through the worker's cache
