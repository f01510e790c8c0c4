"""The queue plan (``query/plan.py``) without Label Studio: what a sync would write for a pool,
given the serving version's answers, the routing policy and the monitors' findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.labeling import parse_label_config
from backend.query.plan import Findings, Scored, plan_queue
from backend.query.pool import Pool
from backend.query.writeback import RANK_FIELD, REASON_FIELD, REVIEW_FIELD
from backend.serving.presentation import Presentation
from backend.serving.routing import RoutingPolicy, is_heldout
from backend.settings import Settings
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)
N = 400
HOLDOUT = 0.1
LEVEL, THRESHOLD = 0.8, 0.95


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, holdout_fraction=HOLDOUT, sync_exact_top=50, audit_share=0.1)


def _pool(n: int = N, data: dict[int, dict] | None = None, predictions: dict[int, dict] | None = None) -> Pool:
    ids = list(range(1000, 1000 + n))
    return Pool(
        ids=ids,
        texts=[f"text {t}" for t in ids],
        data=[dict((data or {}).get(t, {"text": f"text {t}"})) for t in ids],
        predictions={t: dict((predictions or {}).get(t, {})) for t in ids},
        embeddings=np.zeros((n, 4), dtype=np.float32),
        size=n,
    )


def _answer(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def _scored(n: int = N, seed: int = 0, label: str = "v3-x") -> Scored:
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.3, 1.0, n)
    return Scored(
        label=label,
        has_model=True,
        answers=[_answer(SPEC.labels[i % 4]) for i in range(n)],
        confidence=confidence,
        strategy_scores=confidence.copy(),  # least confident first
        diverse=False,
        clusters=np.arange(n) % 5,
        disagree=np.zeros(n, dtype=bool),
    )


def _policy() -> RoutingPolicy:
    return RoutingPolicy(THRESHOLD, 0.1, HOLDOUT, preselect_level=LEVEL)


def _findings(n: int = N, previous: dict | None = None) -> Findings:
    return Findings(np.zeros(n, dtype=bool), {0, 1}, previous=previous or {})


def test_new_predictions_are_shown_as_the_policy_says_and_recorded_exactly(settings):
    pool, scored = _pool(), _scored()
    plan = plan_queue(7, pool, SPEC, scored, _policy(), _findings(), settings)
    assert len(plan.predictions) == N and plan.up_to_date == 0
    by_task = {r[0]: r for r in plan.records}
    for p in plan.predictions:
        i = pool.ids.index(p["task"])
        _, version, presentation, answer, score = by_task[p["task"]]
        assert version == "v3-x" and score == p["score"] == round(float(scored.confidence[i]), 6)
        assert answer == [SPEC.labels[i % 4]]  # the model's answer, recorded even where it is hidden
        assert plan.heldout[i] == is_heldout(p["task"], HOLDOUT)
        if plan.audit[i]:  # an audit sample: one the router would let through, checked blind
            assert p["score"] >= THRESHOLD and not plan.heldout[i]
        if plan.heldout[i] or plan.audit[i]:
            assert presentation == Presentation.BLIND and p["result"] == []
        elif p["score"] >= LEVEL:
            assert presentation == Presentation.PRESELECT and p["result"] == scored.answers[i]
        else:
            assert presentation == Presentation.LEAN and p["result"] == []
    assert plan.audit.sum() > 0
    # written most informative first (as annotators reach them)
    position = {pool.ids[i]: k for k, i in enumerate(plan.order)}
    assert [position[p["task"]] for p in plan.predictions] == sorted(position[p["task"]] for p in plan.predictions)


def test_a_prediction_a_person_may_have_seen_is_never_changed(settings):
    pool0, scored = _pool(), _scored()
    first = plan_queue(7, pool0, SPEC, scored, _policy(), _findings(), settings)
    written = {p["task"]: p for p in first.predictions}
    # as the sync state reads it back: (version, hash, cluster, rank, confidence, presentation, leaning)
    previous = {row[0]: (*row[1:5], *row[6:]) for row in first.state_rows}
    # Label Studio now holds them; the next version of the same family is surer of everything
    pool = _pool(predictions={t: {"v3-x": {**p, "model_version": "v3-x"}} for t, p in written.items()})
    surer = _scored(seed=1)
    surer.confidence = np.full(N, 0.99)
    plan = plan_queue(7, pool, SPEC, surer, _policy(), _findings(previous=previous), settings)
    assert plan.predictions == [] and plan.records == [] and plan.up_to_date == N
    for row in plan.state_rows:  # the record keeps the score and presentation the task shows
        assert row[6] == written[row[0]]["score"] and row[7] == previous[row[0]][5]


def test_the_head_gets_distinct_ranks_and_headers_and_nothing_past_it(settings):
    plan = plan_queue(7, _pool(), SPEC, _scored(), _policy(), _findings(), settings)
    writes = dict(plan.task_writes)
    ranks = [d[RANK_FIELD] for d in writes.values() if RANK_FIELD in d]
    assert len(ranks) == settings.sync_exact_top == len(set(ranks))
    head = {_pool().ids[i] for i in plan.order[: settings.sync_exact_top]}
    for task, data in writes.items():
        if task in head:
            assert data[REASON_FIELD] and isinstance(data[RANK_FIELD], int)
        else:
            assert RANK_FIELD not in data
    # a blind task's header never gives the model's answer away
    for task in head:
        said = writes[task][REASON_FIELD]
        if is_heldout(task, HOLDOUT):
            assert said.startswith("Blind check") and not any(label in said for label in SPEC.labels)


def test_the_review_tab_lists_pre_filled_answers_not_auto_accepted_least_confident_first(settings):
    pool, scored = _pool(), _scored()
    plan = plan_queue(7, pool, SPEC, scored, _policy(), _findings(), settings)
    shown = {r[0]: (r[2], r[4]) for r in plan.records}
    listed = [(d[REVIEW_FIELD], t) for t, d in plan.task_writes if REVIEW_FIELD in d]
    assert listed
    for _, task in listed:
        presentation, score = shown[task]
        assert presentation == Presentation.PRESELECT and LEVEL <= score < THRESHOLD
    scores = [shown[t][1] for _, t in sorted(listed)]
    assert scores == sorted(scores)


def test_the_plan_is_a_function_of_its_inputs(settings):
    one = plan_queue(7, _pool(), SPEC, _scored(), _policy(), _findings(), settings)
    two = plan_queue(7, _pool(), SPEC, _scored(), _policy(), _findings(), settings)
    assert one.task_writes == two.task_writes and one.predictions == two.predictions
    assert np.array_equal(one.order, two.order)


def test_a_cold_start_pre_selects_nothing_and_says_so(settings):
    scored = _scored()
    scored.has_model, scored.answers = False, [[] for _ in range(N)]
    scored.confidence = np.zeros(N)
    plan = plan_queue(7, _pool(), SPEC, scored, None, _findings(), settings)
    assert all(p["result"] == [] for p in plan.predictions)
    said = [d[REASON_FIELD] for _, d in plan.task_writes if REASON_FIELD in d]
    assert said and all(s.startswith("No model answer yet") for s in said)
    assert plan.summary(_pool().ids, SPEC)["review_tab"] == 0
