"""Scoring on the held-out annotations, and the publish gate: a candidate ships only if it is not
worse than the serving version. Both are scored by ``score``, on the same examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from backend.labeling import TaskSpec
from backend.labeling.examples import Example, targets
from backend.labeling.spans import Span
from backend.learning.slices import SliceRegression, class_slice, paired_loss_p, regressions, slice_scores
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.tagger import SpanTagger
from backend.serving.predictor import class_probabilities


def score(
    model: TextClassifier | SpanTagger,
    examples: Sequence[Example],
    spec: TaskSpec,
    threshold: float = 0.5,
    cache: EmbeddingCache | None = None,
    embeddings: np.ndarray | None = None,
) -> dict[str, Any]:
    """Held-out metrics of a version, candidate or serving alike. ``embeddings``: the model's own
    embeddings of ``examples`` when the caller has them; else through ``cache`` when the model runs
    on the cached encoder, else its own encoder."""
    texts = [ex.text for ex in examples]
    if isinstance(model, SpanTagger):
        return evaluate_spans([t.spans for t in model.tag(texts)], examples)
    probs = model.head.proba(embeddings) if embeddings is not None else class_probabilities(model, texts, cache)
    return evaluate(probs, examples, spec, threshold)


def evaluate(
    probs: np.ndarray, examples: Sequence[Example], spec: TaskSpec, threshold: float = 0.5
) -> dict[str, float]:
    """accuracy and macro-F1 (single-label) or subset accuracy and micro-F1 (multi-label); ``primary``
    is the one the gate compares. ``wrong``: the indices of the examples it got wrong (wholly, for
    multi-label), from which ``slices`` holds the accuracy per class and per named field value."""
    n = len(examples)
    if n == 0:
        return {"n": 0}
    y = targets(examples, spec)
    if spec.multi_label:
        pred = probs >= threshold
        truth = y >= 0.5
        tp = float((pred & truth).sum())
        fp = float((pred & ~truth).sum())
        fn = float((~pred & truth).sum())
        micro_f1 = 2 * tp / max(2 * tp + fp + fn, 1e-9)
        right = (pred == truth).all(axis=1)
        return {
            "n": n,
            "subset_accuracy": float(right.mean()),
            "micro_f1": micro_f1,
            "primary": micro_f1,
            **_by_slice(examples, right),
        }
    pred = probs.argmax(axis=1)
    accuracy = float((pred == y).mean())
    f1s = []
    for k in range(len(spec.labels)):
        tp = float(((pred == k) & (y == k)).sum())
        denom = float((pred == k).sum() + (y == k).sum())
        if (y == k).any():
            f1s.append(2 * tp / denom if denom else 0.0)
    by_slice = _by_slice(examples, pred == y)
    for k, label in enumerate(spec.labels):  # a class's slice holds its recall; add its precision
        if class_slice(label) in by_slice["slices"] and (pred == k).any():
            by_slice["slices"][class_slice(label)]["precision"] = round(float((y[pred == k] == k).mean()), 4)
    return {
        "n": n,
        "accuracy": accuracy,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "primary": accuracy,
        **by_slice,
    }


def _by_slice(examples: Sequence[Example], right: np.ndarray) -> dict[str, Any]:
    wrong = [int(i) for i in np.flatnonzero(~right)]
    return {"wrong": wrong, "slices": slice_scores(examples, wrong)}


def evaluate_spans(predicted: Sequence[Sequence[Span]], examples: Sequence[Example]) -> dict[str, float]:
    """Entity-level precision, recall and micro-F1 with exact matching (seqeval's definition): a
    predicted entity counts only if its start, end and type all equal a gold entity's. Per-type
    F1 too; ``primary`` (what the gate compares) is the micro-F1."""
    n = len(examples)
    if n == 0:
        return {"n": 0}
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    for spans, ex in zip(predicted, examples, strict=True):
        pred, gold = {s.key for s in spans}, {s.key for s in ex.spans}
        for counts, keys in ((tp, pred & gold), (fp, pred - gold), (fn, gold - pred)):
            for key in keys:
                counts[key[2]] = counts.get(key[2], 0) + 1

    def f1(t: int, p: int, g: int) -> float:
        return 2 * t / (p + g) if p + g else 0.0

    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = f1(total_tp, total_tp + total_fp, total_tp + total_fn)
    per_type = {
        label: round(f1(tp.get(label, 0), tp.get(label, 0) + fp.get(label, 0), tp.get(label, 0) + fn.get(label, 0)), 4)
        for label in sorted(set(tp) | set(fp) | set(fn))
    }
    return {
        "n": n,
        "entities": total_tp + total_fn,
        "precision": total_tp / (total_tp + total_fp) if total_tp + total_fp else 0.0,
        "recall": total_tp / (total_tp + total_fn) if total_tp + total_fn else 0.0,
        "f1": micro,
        "primary": micro,
        "per_type_f1": per_type,  # type: ignore[dict-item]
    }


@dataclass(frozen=True)
class SliceRule:
    """How the gate guards slices (``learning/slices.py``); ``min_eval`` 0 switches it off."""

    min_eval: int = 30
    margin: float = 0.05
    alpha: float = 0.05
    min_paired: int = 6  # held-out tasks from which a candidate is judged task by task (below the gate's min_eval)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    margin: float
    candidate: dict[str, float]
    serving: dict[str, float] | None
    serving_version: str | None
    slices: tuple[SliceRegression, ...] = ()  # the guarded slices the candidate made worse

    def as_dict(self) -> dict[str, Any]:
        """What is stored and shown (metrics without the per-example ``wrong`` list)."""
        out = asdict(self)
        out["candidate"], out["serving"] = reported(self.candidate), self.serving and reported(self.serving)
        return out


def reported(metrics: dict[str, Any]) -> dict[str, Any]:
    """Held-out metrics as stored and shown: the per-example ``wrong`` list only serves the gate."""
    return {key: value for key, value in metrics.items() if key != "wrong"}


def decide(
    candidate: dict[str, float],
    serving: dict[str, float] | None,
    serving_version: str | None,
    margin: float,
    min_eval: int,
    held: Sequence[Example] = (),
    rule: SliceRule | None = None,
) -> GateDecision:
    """Ship the candidate unless it is worse than the serving version overall (beyond ``margin``) or,
    with ``held`` (the examples both were scored on) and a ``rule``, on a guarded slice."""

    def make(passed: bool, reason: str, worse: Sequence[SliceRegression] = ()) -> GateDecision:
        return GateDecision(passed, reason, margin, candidate, serving, serving_version, tuple(worse))

    if serving is None:
        return make(True, "no compatible version is serving: the first trained version replaces cold start")
    n = candidate.get("n", 0)
    if n < min_eval and rule is not None and n >= rule.min_paired and "wrong" in candidate and "wrong" in serving:
        # few held-out tasks: judged task by task (both scored on the same ones), refused only when
        # significantly worse; a margin on so few would refuse on noise or let anything through
        lost = len(set(candidate["wrong"]) - set(serving["wrong"]))  # type: ignore[arg-type]
        gained = len(set(serving["wrong"]) - set(candidate["wrong"]))  # type: ignore[arg-type]
        p = paired_loss_p(lost, gained)
        if p < rule.alpha:
            return make(
                False,
                f"candidate wrong on {lost} of {n} held-out tasks the serving version got right, right "
                f"on {gained} it got wrong (paired exact test p={p:.3f} < {rule.alpha}): kept "
                f"{serving_version}",
            )
        return make(
            True,
            f"judged on {n} held-out tasks (< {min_eval}) task by task: {lost} lost, {gained} gained, "
            f"no significant loss (paired exact test p={p:.3f})",
        )
    if n < min_eval:
        return make(True, f"only {n} held-out annotations (< {min_eval}): more labels win")
    c, s = candidate["primary"], serving["primary"]
    if c < s - margin:
        return make(False, f"candidate {c:.4f} < serving {s:.4f} - margin {margin}: kept {serving_version}")
    if rule is not None and rule.min_eval and held and "wrong" in candidate and "wrong" in serving:
        worse = regressions(held, candidate["wrong"], serving["wrong"], rule.min_eval, rule.margin, rule.alpha)  # type: ignore[arg-type]
        if worse:
            return make(
                False,
                f"candidate {c:.4f} overall, but worse on {worse[0].text} beyond margin "
                f"{rule.margin}: kept {serving_version}",
                worse,
            )
    return make(True, f"candidate {c:.4f} >= serving {s:.4f} - margin {margin}")
