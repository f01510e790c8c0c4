"""The routing audit: humans' verdicts on predictions auto_accept would skip measure its production
precision, and switch it off when the interval falls below the target (issue 16, item 2)."""

import json

import numpy as np
import pytest

from backend.monitoring.routing_audit import audit_routing, check_routing, wilson
from backend.query.strategies import interleave_audit
from backend.serving.routing import is_audit_sample
from backend.stores.audit import AuditStore, Correction
from backend.stores.registry import Registry


@pytest.mark.parametrize("truth", [0.9, 0.97, 0.99])
def test_the_interval_covers_simulated_annotators_precision_at_its_nominal_rate(truth):
    rng = np.random.default_rng(7)
    covered = []
    for reviewed in (30, 100, 400):
        for _ in range(1000):  # a reviewer agrees with a right prediction: kept with probability `truth`
            kept = int(rng.binomial(reviewed, truth))
            low, high = wilson(kept, reviewed)
            covered.append(low <= truth <= high)
    assert 0.93 <= np.mean(covered) <= 0.99, np.mean(covered)


def _rows(name: str, kept: int, changed: int, score: float) -> list[dict]:
    return [
        {"prediction_model_version": name, "prediction_score": score, "changed": i >= kept}
        for i in range(kept + changed)
    ]


def test_only_predictions_at_or_above_the_threshold_count():
    rows = (
        _rows("v1", 9, 1, 0.95)
        + _rows("v1", 0, 30, 0.5)
        + [{"prediction_model_version": "v1", "prediction_score": 0.99, "changed": None}]
    )
    (result,) = audit_routing(rows, {"v1": 0.9}, target=0.98)
    assert (result.reviewed, result.confirmed, result.precision) == (10, 9, 0.9)
    assert result.low < 0.9 < result.high


def test_auto_accept_is_switched_off_when_humans_show_it_falls_short(tmp_path):
    registry, audit = Registry(tmp_path / "registry"), AuditStore(str(tmp_path / "audit.sqlite3"))
    weak = registry.publish("5", lambda folder: {"routing": {"threshold": 0.9}})
    good = registry.publish("5", lambda folder: {"routing": {"threshold": 0.95}})
    corrections = [
        Correction(5, i, i, "ann", f"2026-11-25T10:{i:04d}", weak, 0.93, [], [], i % 5 == 0, None) for i in range(40)
    ] + [
        Correction(5, 100 + i, 100 + i, "ann", f"2026-11-25T11:{i:04d}", good, 0.97, [], [], False, None)
        for i in range(60)
    ]
    audit.record_corrections(corrections)
    results = {r.model_version: r for r in check_routing(audit, registry, 5, target=0.98)}
    assert results[weak].suspended and "32/40" in results[weak].suspended  # 80 % kept, interval far below 98 %
    assert results[good].suspended is None  # 60/60 kept: the interval reaches the target
    assert registry.routing_suspended(5, weak) and registry.routing_suspended(5, good) is None
    check_routing(audit, registry, 5, target=0.98)  # a second check decides nothing new
    (decision,) = audit.routing_decisions(5)
    assert decision["model_version"] == weak and decision["reviewed"] == 40 and decision["confirmed"] == 32


def test_audit_samples_come_one_in_twenty_in_the_queue():
    ids = np.arange(10_000)
    picked = np.array([is_audit_sample(int(t), 0.05) for t in ids])
    assert 0.04 < picked.mean() < 0.06
    scores = np.linspace(0, 1, len(ids))
    auto = scores > 0.5  # the confident half would skip review...
    audit = auto & picked  # ...except its audit samples
    order = np.argsort(interleave_audit(scores, audit, 0.05, seed=3), kind="stable")
    head = order[:1000]
    assert 40 <= audit[head].sum() <= 60  # one in twenty of what annotators are served
    rest = head[~audit[head]]
    assert list(rest) == sorted(rest)  # the others keep the strategy's order


@pytest.mark.parametrize("truth", [0.9, 0.97])
def test_the_sampler_and_the_estimate_together_cover_the_models_true_precision(truth):
    """The whole routing audit against simulated reviewers: each draw is a fresh pool of auto_accept
    tasks (new ids) whose predictions are right with probability ``truth``; the audit sampler picks
    5 %, reviewers keep exactly the right ones, and the version's interval is computed from those
    corrections as the retrain does. The interval must cover ``truth`` at about its 95 % rate."""
    rng = np.random.default_rng(11)
    covered, sampled = [], []
    for draw in range(300):
        ids = np.arange(draw * 2_000, (draw + 1) * 2_000)  # a pool of 2,000 auto_accept tasks
        right = rng.random(len(ids)) < truth
        picked = [i for i, task in enumerate(ids) if is_audit_sample(int(task), 0.05)]
        sampled.append(len(picked) / len(ids))
        rows = [{"prediction_model_version": "v1", "prediction_score": 0.96, "changed": not right[i]} for i in picked]
        (measured,) = audit_routing(rows, {"v1": 0.95}, target=0.98)
        assert measured.reviewed == len(picked)
        covered.append(measured.low <= truth <= measured.high)
    assert 0.045 < np.mean(sampled) < 0.055  # the share drawn is the configured one
    assert 0.92 <= np.mean(covered) <= 0.98, np.mean(covered)


def test_a_blind_audit_sample_counts_by_the_model_answer_the_sync_recorded():
    """Issue 26: audit samples are shown blind (nothing pre-selected), so no annotation "changes" them;
    the outcome is the annotator's label against the answer recorded when the prediction was written."""

    def row(task, final):
        return {
            "task_id": task,
            "prediction_model_version": "v1",
            "prediction_score": 0.99,
            "changed": None,
            "final_result": json.dumps([{"value": {"choices": [final]}}]),
        }

    shown = {
        (task, "v1"): {"answer": [answer], "presentation": "blind"}
        for task, answer in ((1, "World"), (2, "World"), (3, "Sports"))
    }
    shown[(5, "v1")] = {"answer": ["World"], "presentation": "leaning only"}  # not blind: not an audit sample
    rows = [row(1, "World"), row(2, "Business"), row(3, "Sports"), row(4, "World"), row(5, "World")]
    (audited,) = audit_routing(rows, {"v1": 0.9}, 0.95, shown=shown)
    assert (audited.reviewed, audited.confirmed) == (3, 2)  # task 4 has no record: not counted
    (without,) = audit_routing([row(1, "World")], {"v1": 0.9}, 0.95)
    assert without.reviewed == 0
