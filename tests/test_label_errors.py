"""Probable label errors: cross-validated probabilities and cleanlab find flipped labels, with the
suggested label and neighbours as evidence; confirmed tasks are not flagged again; unsupported
projects get a clear reason."""

from __future__ import annotations

import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.monitoring.label_errors import LabelErrorsUnsupported, find_suspects, out_of_sample_probs
from tests.support.payloads import AG_CONFIG, MULTI_CONFIG

NER_CONFIG = (
    '<View><Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>'
    '<Text name="text" value="$text"/></View>'
)

SPEC = parse_label_config(AG_CONFIG)
LABELS = list(SPEC.labels)


def project(per_class: int = 60, flips: int = 8, seed: int = 0):
    """Four well-separated clusters, one per label, with ``flips`` labels moved to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 4
    x, truth = [], []
    for c in range(4):
        x.append(centres[c] + rng.normal(size=(per_class, 16)))
        truth += [c] * per_class
    x, truth = np.concatenate(x).astype(np.float32), np.array(truth)
    given = truth.copy()
    flipped = rng.choice(len(given), size=flips, replace=False)
    given[flipped] = (given[flipped] + 1) % 4
    examples = [Example(f"text {i}", (LABELS[g],), 1000 + i) for i, g in enumerate(given)]
    return examples, x, truth, set(int(1000 + i) for i in flipped)


def test_flipped_labels_come_first_with_the_right_suggestion_and_evidence():
    examples, x, truth, flipped = project()
    suspects = find_suspects(SPEC, examples, x)
    top = [s.task_id for s in suspects[: len(flipped)]]
    assert set(top) == flipped  # the well-separated flips are exactly the most suspicious
    for s in suspects[: len(flipped)]:
        row = s.task_id - 1000
        assert s.suggested == LABELS[truth[row]] != s.given and 0 <= s.quality < 0.5
        assert len(s.neighbours) == 3 and s.task_id not in s.neighbours
        assert all(examples[n - 1000].labels[0] == s.suggested for n in s.neighbours)


def test_a_label_a_reviewer_kept_is_not_flagged_again_until_it_changes():
    examples, x, _, flipped = project()
    kept = next(iter(flipped))
    given = examples[kept - 1000].labels[0]
    assert kept not in {s.task_id for s in find_suspects(SPEC, examples, x, confirmed={kept: given})}
    other = next(label for label in LABELS if label != given)  # confirmed with another label: it changed since
    assert kept in {s.task_id for s in find_suspects(SPEC, examples, x, confirmed={kept: other})}


def test_probabilities_are_out_of_sample():
    """A row's probabilities come from a head that never saw it: a lone mislabeled point in a tight
    cluster gets its cluster's label, which an in-sample fit would not give it so surely."""
    examples, x, truth, flipped = project(flips=4)
    y = np.array([LABELS.index(ex.labels[0]) for ex in examples])
    probs = out_of_sample_probs(x, y, 4)
    rows = [t - 1000 for t in flipped]
    assert (probs[rows].argmax(axis=1) == truth[rows]).all()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_right_labels_of_hard_tasks_are_not_flagged_by_the_dozen(seed):
    """Active learning sends people the tasks near class boundaries, where cross-validated heads are
    weak. Overlapping classes, every label right: cleanlab's relative thresholds alone flag about a
    quarter of them; the calibrated bound keeps the list to a few."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 0.5
    x = np.concatenate([centres[c] + rng.normal(size=(50, 16)) for c in range(4)]).astype(np.float32)
    y = np.repeat(np.arange(4), 50)
    examples = [Example(f"text {i}", (LABELS[c],), i) for i, c in enumerate(y)]
    assert find_label_issues(y, out_of_sample_probs(x, y, 4), n_jobs=1).sum() >= 40  # the premise: a weak model
    assert len(find_suspects(SPEC, examples, x)) <= 20


@pytest.mark.parametrize(
    ("config", "message"),
    [(MULTI_CONFIG, "multi-label"), (NER_CONFIG, "NER is not supported")],
)
def test_unsupported_projects_say_why(config, message):
    spec = parse_label_config(config)
    with pytest.raises(LabelErrorsUnsupported, match=message):
        find_suspects(spec, [], np.zeros((0, 16), dtype=np.float32))


def test_too_few_annotations_to_cross_validate_say_so():
    examples, x, _, _ = project(per_class=3, flips=0)
    with pytest.raises(LabelErrorsUnsupported, match="at least 5 annotations of each of two labels"):
        find_suspects(SPEC, examples, x)


def test_a_label_check_is_audited_and_reported(tmp_path):
    from dataclasses import asdict

    from backend.oversight.collect import ProjectData
    from backend.oversight.report import render
    from backend.stores.audit import AuditStore

    examples, x, _, flipped = project()
    suspects = find_suspects(SPEC, examples, x)
    audit = AuditStore(str(tmp_path / "audit.sqlite3"))
    audit.record_label_check(7, "v3-x", len(examples), [asdict(s) for s in suspects])
    checks = audit.label_checks(7)
    assert len(checks) == 1 and checks[0]["annotated"] == len(examples) and checks[0]["version"] == "v3-x"
    assert {s["task_id"] for s in checks[0]["suspects"][: len(flipped)]} == flipped
    page = render(ProjectData(7, [], [], [], {}, "v3-x", None, checks))
    assert "<h2>Probable label errors</h2>" in page and f"{len(suspects)} probable label errors among 240" in page
    first = suspects[0]
    assert f"<td>{first.task_id}</td><td>{first.given}</td><td>{first.suggested}</td>" in page


def test_tasks_whose_annotators_disagree_are_flagged_with_their_consensus_and_annotators_rated():
    """Three annotators on 60 tasks: two careful, one who answers at random. CROWDLAB rates the
    careless one lowest, and tasks where the careful two disagree are flagged as such."""
    from backend.monitoring.label_errors import check_labels

    examples, x, truth, _ = project(flips=0)
    rng = np.random.default_rng(1)
    answers: dict[int, dict[str, str]] = {}
    for row in range(0, 240, 4):  # every fourth task has three answers
        task = 1000 + row
        answers[task] = {
            "careful-1": LABELS[truth[row]],
            "careful-2": LABELS[truth[row]],
            "random": LABELS[int(rng.integers(4))],
        }
    split = [1000 + r for r in range(0, 240, 4)][:3]
    for task in split:  # the careful two disagree, and the random one sides with neither
        row = task - 1000
        answers[task] = {
            "careful-1": LABELS[truth[row]],
            "careful-2": LABELS[(truth[row] + 1) % 4],
            "random": LABELS[(truth[row] + 2) % 4],
        }
    result = check_labels(SPEC, examples, x, answers=answers)
    quality = {a.annotator: a.quality for a in result.annotators}
    assert quality["random"] < min(quality["careful-1"], quality["careful-2"])
    assert result.multi_annotated == 60 and 0.5 < result.mean_agreement < 1
    flagged = {s.task_id: s for s in result.suspects if s.reason == "annotators disagree"}
    assert set(split) <= set(flagged)
    assert all(flagged[t].suggested == LABELS[truth[t - 1000]] for t in split)  # the consensus follows the model


def test_a_verdict_reads_what_the_reviewer_did():
    from backend.monitoring.label_errors import verdict

    assert verdict("Sports", "t1", ("Sports", "t1")) is None  # untouched
    assert verdict("Sports", "t1", ("World", "t2")) == "changed"
    assert verdict("Sports", "t1", ("Sports", "t2")) == "kept"  # reopened and submitted as it was
    assert verdict("Sports", "t1", None) == "removed"


def test_verdicts_annotators_and_batch_corrections_are_reported(tmp_path):
    from backend.oversight.collect import ProjectData
    from backend.oversight.report import render
    from backend.stores.audit import AuditStore

    audit = AuditStore(str(tmp_path / "audit.sqlite3"))
    flag = {"task_id": 5, "annotated_at": "t1", "given": "Sports", "suggested": "World", "quality": 0.02}
    audit.record_label_flags(7, "v3-x", [flag, {**flag, "task_id": 6}])
    assert {f["task_id"] for f in audit.open_label_flags(7)} == {5, 6}
    audit.record_label_verdicts(
        7, [{**flag, "version": "v3-x", "verdict": "changed", "final": "World", "reviewer": "2", "decided_at": "t2"}]
    )
    assert [f["task_id"] for f in audit.open_label_flags(7)] == [6]  # a decided flag is closed
    crowd = {
        "multi_annotated": 12,
        "mean_agreement": 0.83,
        "annotators": [
            {"annotator": "4", "quality": 0.91, "agreement": 0.9, "labeled": 40},
            {"annotator": "9", "quality": 0.42, "agreement": 0.5, "labeled": 12},
        ],
    }
    audit.record_label_check(7, "v3-x", 100, [{**flag, "neighbours": [1, 2, 3], "reason": "model disagrees"}], crowd)
    audit.record_proposal(7, 501, "v3-x", 40, "Sports", "World", 0.9, [41, 42, 43])
    audit.record_proposal(7, 502, "v3-x", 44, "Sports", "Business", 0.9, [])  # a correction with no similar task
    audit.record_proposal_outcomes(
        7,
        501,
        [
            {"task_id": 41, "outcome": "accepted"},
            {"task_id": 42, "outcome": "accepted"},
            {"task_id": 43, "outcome": "rejected"},
        ],
    )
    page = render(
        ProjectData(
            7,
            [],
            [],
            [],
            {},
            "v3-x",
            None,
            audit.label_checks(7),
            label_verdicts=audit.label_verdicts(7),
            annotator_checks=audit.annotator_checks(7),
            proposals=audit.proposals(7),
        )
    )
    assert "<h2>Reviewers' verdicts on flags</h2>" in page and "<td>v3-x</td><td>1</td><td>1</td><td>0</td>" in page
    assert "<h2>Annotators</h2>" in page and "12 tasks with several annotators' answers" in page
    assert page.index("<td>9</td>") < page.index("<td>4</td>")  # the weakest annotator first
    assert "<h2>Batch corrections</h2>" in page
    assert "2 corrections looked at, 1 with similar tasks: 3 tasks proposed, 2 accepted, 1 rejected" in page
    assert "accepted share of those decided 67%; labels saved per correction 1.00" in page
