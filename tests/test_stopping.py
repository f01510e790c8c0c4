"""The stabilising-predictions criterion: kappa between consecutive versions' answers on a fixed
reference set, stable after WINDOW kappas at or above THRESHOLD, said in words."""

from __future__ import annotations

import numpy as np

from backend.monitoring.stopping import STOP_SET, THRESHOLD, WINDOW, StoppingState, answer_key


def answers(tasks, flip_every=0):
    return {
        t: answer_key([{"value": {"choices": ["B" if flip_every and t % flip_every == 0 else "A"]}}]) for t in tasks
    }


def test_the_reference_set_is_drawn_once_and_stays(tmp_path):
    state = StoppingState(tmp_path / "s.sqlite3")
    first = state.stop_set(1, list(range(10_000)))
    assert len(first) == STOP_SET
    assert state.stop_set(1, list(range(20_000, 30_000))) == first  # fixed, whatever the pool is now
    assert StoppingState(tmp_path / "s.sqlite3").stop_set(1, []) == first  # and persisted
    assert state.stop_set(2, list(range(50))) == set(range(50))  # a small pool: all of it


def test_kappa_per_version_and_the_verdict(tmp_path):
    state = StoppingState(tmp_path / "s.sqlite3")
    tasks = list(range(1000))
    assert state.status(1).kappas == [] and "not enough versions" in state.status(1).message
    state.record(1, "v1", answers(tasks, flip_every=2))  # half B
    state.record(1, "v1", answers(tasks, flip_every=3))  # the same version again: recorded once
    state.record(1, "v2", answers(tasks, flip_every=3))  # a third B: changed a lot
    status = state.status(1)
    assert [v for v, _, _ in status.kappas] == ["v2"] and status.kappas[0][1] < 0.9 and not status.stable
    assert "still changing" in status.message
    for version in ("v3", "v4", "v5"):
        state.record(1, version, answers(tasks[:900], flip_every=3))  # annotated tasks leave: compare the rest
    status = state.status(1)
    assert [k for _, k, _ in status.kappas[-WINDOW:]] == [1.0] * WINDOW and status.kappas[-1][2] == 900
    assert status.stable and "stabilised" in status.message and str(THRESHOLD) in status.message


def test_the_report_says_when_to_stop(tmp_path):
    from backend.oversight.collect import ProjectData
    from backend.oversight.report import render

    state = StoppingState(tmp_path / "s.sqlite3")
    for version in ("v1", "v2", "v3", "v4"):
        state.record(3, version, answers(range(100)))
    page = render(ProjectData(3, [], [], [], {}, "v4", state.status(3)))
    assert "<h2>When to stop</h2>" in page and "predictions have stabilised" in page


def test_the_learning_curve_gain_is_estimated_from_versions_held_out_scores():
    from backend.monitoring.stopping import estimate_gain, learning_curve

    truth = lambda n: 0.95 - 3.0 * n**-0.6  # noqa: E731
    rng = np.random.default_rng(0)
    points = [(n, truth(n) + rng.normal(0, 0.002)) for n in (50, 100, 150, 200, 300, 400, 500)]
    gain = estimate_gain(points, more=100)
    assert gain is not None and gain.labels == 500 and gain.points == 7
    expected = truth(600) - truth(500)
    assert abs(gain.gain - expected) < 0.004 and 0 < gain.stderr < 0.01
    assert not gain.small  # +0.75 points from 100 labels still pay
    flat = estimate_gain([(n, 0.9 + rng.normal(0, 0.001)) for n in (500, 1000, 1500, 2000, 2500)])
    assert flat is not None and flat.small
    assert estimate_gain(points[:3]) is None  # too few versions to fit a curve
    metas = [
        {"metrics": {"primary": 0.8, "n": 40}, "training": {"train_examples": 200}},
        {"metrics": {"primary": 0.9, "n": 5}, "training": {"train_examples": 300}},  # too few held out
        {"metrics": {"primary": 0.7}},
    ]
    assert learning_curve(metas) == [(200, 0.8)]


def test_stable_predictions_low_uncertainty_or_small_gain_say_labels_stopped_paying(tmp_path):
    state = StoppingState(tmp_path / "s.sqlite3")
    tasks = list(range(2000))
    state.record(1, "v1", answers(tasks, flip_every=50), uncertainty=0.2)
    for version in ("v2", "v3", "v4", "v5"):
        state.record(1, version, answers(tasks, flip_every=100), uncertainty=0.12)
    status = state.status(1)
    assert status.changed == [0.01, 0.0, 0.0, 0.0]
    assert "changed on up to 0.0% of 2,000 reference tasks" in status.message
    assert status.stable and not status.stop  # stable, but the pool is still uncertain and no curve
    assert "mean uncertainty on them 0.120" in status.message and "predictions have stabilised" in status.message
    flat = [(n, 0.9) for n in (500, 1000, 1500, 2000)]
    status = state.status(1, flat)
    assert status.stop and "estimated gain from 100 more labels: +0.0" in status.message
    assert "more labels have stopped paying" in status.message
    state.record(1, "v6", answers(tasks, flip_every=100), uncertainty=0.03)
    assert state.status(1).stop  # low uncertainty alone, once stable


def test_each_criterion_decides_by_its_own_measure():
    from backend.monitoring.stopping import EstimatedGain, OverallUncertainty, StabilizingPredictions, StopHistory

    tasks = list(range(200))
    same = [(f"v{i}", answers(tasks)) for i in range(WINDOW + 1)]
    flipping = [(f"v{i}", answers(tasks, flip_every=2 + i)) for i in range(WINDOW + 1)]
    assert StabilizingPredictions().stop(StopHistory(same))
    assert not StabilizingPredictions().stop(StopHistory(flipping))
    assert not StabilizingPredictions(window=WINDOW + 1).stop(StopHistory(same))  # one comparison short
    assert OverallUncertainty().stop(StopHistory([], uncertainty=0.01))
    assert not OverallUncertainty().stop(StopHistory([], uncertainty=0.2))
    assert not OverallUncertainty().stop(StopHistory([]))  # nothing measured: never stop
    flat = [(n, 0.9 - 0.5 * n**-1.5) for n in (100, 200, 300, 400, 500, 600)]  # learning curve already flat
    steep = [(n, 0.95 - 3.0 * n**-0.6) for n in (50, 100, 150, 200, 300, 400)]
    assert EstimatedGain().stop(StopHistory([], curve=flat))
    assert not EstimatedGain().stop(StopHistory([], curve=steep))
    assert not EstimatedGain().stop(StopHistory([], curve=flat[:2]))  # too few versions to fit a curve
