"""Batch correction's maths: the project's similarity threshold from annotated pairs (and its
fallback radius), and which pool tasks one correction is proposed for; proposals in the audit store."""

from __future__ import annotations

import numpy as np

from backend.learning.batch_correction import propose, similarity_threshold, unit
from backend.stores.audit import AuditStore


def clusters(per: int = 40, spread: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 32)) * 3
    x = np.concatenate([centres[c] + spread * rng.normal(size=(per, 32)) for c in range(3)])
    return x.astype(np.float32), np.repeat(np.arange(3), per)


def test_threshold_keeps_the_share_of_same_label_pairs_above_it():
    x, y = clusters()
    y_noisy = y.copy()
    y_noisy[::10] = (y_noisy[::10] + 1) % 3  # a tenth of the labels wrong: no threshold reaches 99 %
    t = similarity_threshold(x, y, target=0.95)
    assert t.source == "pairs" and t.same_label >= 0.95 and t.pairs >= 30
    u = unit(x)
    sims = (u @ u.T)[np.triu_indices(len(y), 1)]
    same = (y[:, None] == y[None, :])[np.triu_indices(len(y), 1)]
    assert same[sims >= t.similarity].mean() >= 0.95  # the promise, checked from scratch
    strict = similarity_threshold(x, y_noisy, target=0.99)
    assert strict.source == "radius" and strict.same_label is None and 0 < strict.similarity < 1


def test_too_few_annotations_fall_back_to_a_radius_around_each_task():
    x, y = clusters(per=3)
    t = similarity_threshold(x, y, target=0.95, min_pairs=100)
    assert t.source == "radius" and t.pairs == 0
    assert similarity_threshold(x[:1], y[:1]).similarity == 1.0  # one annotation: only duplicates


def test_proposals_are_near_predicted_wrong_hesitant_and_nearest_to_the_correction():
    x, y = clusters()
    corrected, right, wrong = x[0], 0, 1
    pool = np.stack([x[1], x[2], x[3], x[50], x[4] * -1])  # three near, one in another cluster, one far
    probs = np.array(
        [
            [0.3, 0.6, 0.1],  # near, says wrong, hesitates with right → proposed
            [0.1, 0.6, 0.3],  # near, says wrong, but its second choice is not right
            [0.7, 0.2, 0.1],  # near, already right
            [0.3, 0.6, 0.1],  # far away (another cluster)
            [0.3, 0.6, 0.1],
        ]
    )
    threshold = similarity_threshold(x, y).similarity
    rows = propose(corrected, right, wrong, pool, probs, x[:1], y[:1], threshold)
    assert rows.tolist() == [0]
    # an annotated task of another label that is nearer than the correction vetoes the proposal
    rows = propose(corrected, right, wrong, pool, probs, np.stack([x[0], x[1]]), np.array([0, 2]), threshold)
    assert rows.tolist() == []
    assert propose(corrected, right, wrong, pool[:0], probs[:0], x[:1], y[:1], threshold).tolist() == []


def test_proposals_and_their_outcomes_are_audited_once(tmp_path):
    audit = AuditStore(str(tmp_path / "audit.sqlite3"))
    assert audit.record_proposal(3, 71, "v2-x", 10, "Sports", "World", 0.8, [11, 12, 13])
    assert not audit.record_proposal(3, 71, "v2-x", 10, "Sports", "World", 0.8, [11])  # one per correction
    audit.record_proposal_outcomes(3, 71, [{"task_id": 11, "outcome": "accepted", "reviewer": "1"}])
    audit.record_proposal_outcomes(
        3, 71, [{"task_id": 11, "outcome": "rejected"}, {"task_id": 12, "outcome": "expired"}]
    )
    (proposal,) = audit.proposals(3)
    assert proposal["task_ids"] == [11, 12, 13] and proposal["label"] == "World"
    assert {t: o["outcome"] for t, o in proposal["outcomes"].items()} == {11: "accepted", 12: "expired"}
