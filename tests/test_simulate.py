"""`hitl simulate` end to end on a slice of TREC-6 with the tiny encoder (fast), then a rerun that resumes."""

import csv
import json
import time

import numpy as np
import pytest

from backend.models.encoder import load_encoder
from backend.tools.simulate import simulate
from tests.support.data import data_dir

pytestmark = pytest.mark.tools  # a replay or benchmark: ./scripts/test.sh --quick leaves it out


def _args(tmp_path, tiny_encoder_dir, **changes):
    """A small replay on TREC-6 with the tiny encoder."""
    args = dict(
        dataset=data_dir() / "trec",
        strategy="margin-diverse",
        budget=120,
        step=35,
        seeds=2,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        encoder=load_encoder(str(tiny_encoder_dir)),
        start=50,
        pool_size=600,
        test_size=200,
        progress=False,
    )
    return {**args, **changes}


def test_simulate_writes_curves_plot_and_summary_and_resumes(tmp_path, tiny_encoder_dir):
    args = _args(tmp_path, tiny_encoder_dir)
    out = args["out"]
    summary = simulate(**args)
    with open(out / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = {"strategy", "seed", "labels", "accuracy", "macro_f1", "ece", "ece_calibrated", "ece_pool_calibrated"}
    assert columns <= set(rows[0])
    assert sorted({(r["strategy"], r["seed"]) for r in rows}) == [
        ("margin-diverse", "0"),
        ("margin-diverse", "1"),
        ("random", "0"),
        ("random", "1"),
    ]
    assert [int(r["labels"]) for r in rows if r["strategy"] == "random" and r["seed"] == "0"] == [50, 85, 120, 120][:3]
    assert (out / "learning_curves.png").stat().st_size > 10_000
    first, second = [r for r in rows if r["strategy"] == "margin-diverse" and r["seed"] == "0"][:2]
    assert first["stop_kappa"] == "" and -1 <= float(second["stop_kappa"]) <= 1  # kappa needs two versions
    assert all(0 <= float(r["stop_uncertainty"]) <= 1 and r["stop"] in ("0", "1") for r in rows)
    assert set(summary["strategies"]["random"]["stop"]) >= {"labels_at_stop", "labels_to_99pct_of_final"}
    assert json.loads((out / "summary.json").read_text())["strategies"].keys() == {"margin-diverse", "random"}
    assert "labels to reach random's final" in (out / "summary.md").read_text()
    reached = summary["strategies"]["random"]["labels_to_reach_random_final"]
    assert reached in (50, 85, 120)  # random reaches its own final accuracy by the end, at the latest

    started = time.perf_counter()
    again = simulate(**args)  # every (strategy, seed) finished: nothing is recomputed
    assert again["strategies"] == summary["strategies"]
    assert time.perf_counter() - started < summary["seconds"] + 5


def test_simulate_replays_the_int8_encoder_with_its_own_cache(tmp_path, tiny_encoder_dir):
    encoder = load_encoder(str(tiny_encoder_dir)).quantized()
    summary = simulate(
        dataset=data_dir() / "trec",
        strategy="margin",
        budget=85,
        step=35,
        seeds=1,
        out=tmp_path / "o",
        cache_dir=tmp_path / "cache",
        encoder=encoder,
        start=50,
        pool_size=300,
        test_size=100,
        progress=False,
    )
    assert set(summary["strategies"]) == {"margin", "random"}
    caches = sorted(p.name for p in (tmp_path / "cache").glob("embeddings-*.sqlite3"))
    assert caches == [f"embeddings-{encoder.identity}.sqlite3"] and encoder.identity.endswith("-int8")


def test_the_stop_point_against_the_labels_needed_for_99_percent_of_the_final_accuracy():
    from backend.tools.simulate import stop_point

    def run(seed, accuracies, stop_at):
        return [
            {"strategy": "m", "seed": seed, "labels": 100 * (i + 1), "accuracy": a, "stop": int(i == stop_at)}
            for i, a in enumerate(accuracies)
        ]

    rows = (
        run(0, [0.5, 0.8, 0.89, 0.9, 0.9], stop_at=3)
        + run(1, [0.5, 0.7, 0.85, 0.9, 0.91], stop_at=2)
        + run(2, [0.6, 0.8, 0.9, 0.9, 0.9], stop_at=-1)
    )  # the third seed never stops
    found = stop_point(rows, "m")
    assert found["labels_at_stop"] == 400 and found["seeds_stopped"] == 2  # 400, 300, 500 (never: the budget)
    assert found["labels_to_99pct_of_final"] == 400  # 400 (0.89 < 0.891), 500 (0.9 < 0.9009), 300
    assert found["accuracy_given_up"] == 0.0  # 0.0, 0.06, 0.0


def test_the_replay_fine_tunes_when_the_products_schedule_would(tmp_path, tiny_encoder_dir):
    from backend.settings import Settings
    from backend.tools.simulate import FineTunes

    args = _args(tmp_path, tiny_encoder_dir, strategy="margin", budget=155, seeds=1, pool_size=400, test_size=100)
    out = args["out"]
    simulate(**args)  # head-only first, in the same folder: its rows must not be reused below
    settings = Settings(finetune_min_labels=60, finetune_growth=0.3, finetune_epochs=1, finetune_min_steps=0)
    summary = simulate(**args, fine_tunes=FineTunes(args["encoder"], settings))
    with open(out / "curve.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["strategy"] == "margin"]
    # 50 < 60: the head; 85: the first fine-tune; 120 >= 85 * 1.3: another; 155 < 120 * 1.3: a head on its encoder
    assert [(int(r["labels"]), r["served"]) for r in rows] == [
        (50, "head"),
        (85, "fine-tuned"),
        (120, "fine-tuned"),
        (155, "head on fine-tuned encoder"),
    ]
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert summary["replay"]["replay"] == "fine-tunes" and "fine-tunes replay" in (out / "summary.md").read_text()


def test_a_warm_started_replay_fine_tunes_from_the_last_fine_tuned_encoder(tiny_encoder_dir):
    """Under HITL_FINETUNE_WARM_START the replay's second fine-tune starts where the first ended, as
    the product's does; without it, from the base encoder (same labels, same seed: the same weights)."""
    from backend.labeling.examples import Example
    from backend.settings import Settings
    from backend.tools.simulate import FineTunes, Pool

    base = load_encoder(str(tiny_encoder_dir), precision="float32")
    names = ["a", "b"]
    texts = [f"{'alpha' if i % 2 else 'beta'} text number {i}" for i in range(40)]
    pool = Pool(texts, np.array([i % 2 for i in range(40)]), names, base.embed(texts))
    examples = [Example(t, (names[i % 2],), i) for i, t in enumerate(texts)]
    cold = FineTunes(base, Settings(finetune_epochs=1, finetune_min_steps=0))
    warm = FineTunes(base, Settings(finetune_epochs=1, finetune_min_steps=0, finetune_warm_start=True))
    first = cold.tune(pool, examples[:20])
    assert cold.tune(pool, examples, first).identity == cold.tune(pool, examples).identity  # from the base
    assert warm.tune(pool, examples, first).identity != cold.tune(pool, examples).identity  # from ``first``
    assert warm.describe()["warm_start"] and not cold.describe()["warm_start"]


def test_an_interrupted_replay_keeps_its_finished_seeds_and_resumes_from_them(tmp_path, tiny_encoder_dir, monkeypatch):
    from backend.tools import simulate as module

    real, calls = module.run_seed, []

    def interrupted_at_the_third(*args, **kwargs):
        calls.append(args[2:4])  # (strategy, seed)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third seed
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "run_seed", interrupted_at_the_third)
    args = _args(tmp_path, tiny_encoder_dir)
    with pytest.raises(KeyboardInterrupt):
        simulate(**args)
    with open(args["out"] / "curve.csv") as handle:
        kept = {(r["strategy"], int(r["seed"])) for r in csv.DictReader(handle)}
    assert kept == {("margin-diverse", 0), ("margin-diverse", 1)}
    assert json.loads((args["out"] / "finals.json").read_text()).keys() == {"margin-diverse:0", "margin-diverse:1"}

    calls.clear()
    monkeypatch.setattr(module, "run_seed", lambda *a, **k: (calls.append(a[2:4]), real(*a, **k))[1])
    summary = simulate(**args)
    assert calls == [("random", 0), ("random", 1)]  # only what the interruption left
    assert summary["strategies"].keys() == {"margin-diverse", "random"}


def test_simulate_replays_a_model_plugin(tmp_path, tiny_encoder_dir):
    """`hitl simulate --model`: the scikit-learn example in the same replay, calibrated on its held-out side."""
    args = _args(tmp_path, tiny_encoder_dir, budget=155, plugin="examples.tfidf_logreg.model:TfidfLogReg")
    summary = simulate(**args)
    with open(args["out"] / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert summary["replay"]["model"] == "examples.tfidf_logreg.model:TfidfLogReg"
    assert all(r["l2"] == "" for r in rows)  # no head: the plug-in's own fit
    final = [r for r in rows if int(r["labels"]) == 155]
    assert final and all(float(r["accuracy"]) > 1 / 6 + 0.1 for r in final)  # learns TREC-6's six classes
    assert any(float(r["temperature"]) != 1.0 for r in rows)  # calibrated on the held-out annotations
