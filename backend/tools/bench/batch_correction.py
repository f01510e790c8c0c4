"""``hitl bench batch-correction``: how right are the proposals one correction makes?

A simulated project per seed: ``--labels`` random annotations, then ``--steps`` annotations served
in the product's queue order (margin uncertainty of the serving head) and answered with the
dataset's labels. Each time the served pre-annotation was wrong (a correction), the head is
refitted on every annotation (as the retrain before the proposal job does), the project's
similarity threshold is calibrated on its annotated pairs, and ``learning.batch_correction``
proposes the correction's label for pool tasks (at most ``--max-tasks``). Corrections and proposals
are replayed on the frozen encoder's embeddings (the head path). A simulated reviewer
accepts the right proposals (they become annotations) and rejects the rest.

proposal_precision = proposals whose dataset label is the proposed one / proposals;
tasks_per_correction = proposals per correction (accepted ones are labels saved). Reported for
the product's default (same-label share 0.95, nearest-annotation rule on) and, as the curve, for
other shares and without the rule. Medians over seeds.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from backend.learning.batch_correction import propose, similarity_threshold
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.models.head import LinearHead
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.simulate import embed_all, load_split

# (same-label share the threshold is calibrated for, or a fixed cosine similarity; nearest-annotation rule)
VARIANTS = [
    ("share", 0.90, True),
    ("share", 0.95, True),
    ("share", 0.95, False),
    ("cosine", 0.6, True),
    ("cosine", 0.7, True),
    ("cosine", 0.8, True),
    ("cosine", 0.9, True),
]


def bench_batch_correction(args: argparse.Namespace, settings: Settings) -> int:
    texts, gold = load_split(dataset_dir(args.data, args.dataset), "train", args.pool)
    names = sorted(set(gold))
    y = np.array([names.index(g) for g in gold])
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    x = embed_all(cache, texts, f"{args.dataset} pool")
    default = ("share", settings.proposal_same_label, True)
    variants = sorted(set(VARIANTS) | {default})
    results: dict[tuple[str, float, bool], list[tuple[float, float]]] = {v: [] for v in variants}
    made: dict[tuple[str, float, bool], int] = dict.fromkeys(variants, 0)
    print(
        f"{args.dataset}: {len(texts)} texts, {args.labels} random annotations then {args.steps} served by "
        f"margin, seeds {args.seeds}"
    )
    for seed in range(args.seeds):
        for variant in variants:
            precision, per_correction, corrections = replay(x, y, len(names), args, seed, *variant)
            results[variant].append((precision, per_correction))
            made[variant] += round(per_correction * corrections)
            print(
                f"seed {seed} {_name(variant)}: "
                f"{corrections} corrections, {per_correction:.2f} proposals each, precision {precision:.4f}"
            )
    print("curve (medians over seeds):")
    for variant in variants:
        p, t = _medians(results[variant])
        print(
            f"  {_name(variant)}: precision {p:.4f}, tasks per correction {t:.2f} ({made[variant]} proposed "
            "tasks over all seeds)"
        )
    p, t = _medians(results[default])
    print(f"proposal_precision={p:.4f} tasks_per_correction={t:.2f}")
    return 0


def _medians(rows: list[tuple[float, float]]) -> tuple[float, float]:
    """Median precision over the seeds that proposed anything (nan when none did), median reach."""
    precisions = [r[0] for r in rows if not np.isnan(r[0])]
    return (statistics.median(precisions) if precisions else float("nan"), statistics.median(r[1] for r in rows))


def _name(variant: tuple[str, float, bool]) -> str:
    how, value, nearest_rule = variant
    near = "threshold for a same-label share of" if how == "share" else "fixed cosine"
    return f"{near} {value:.2f}, nearest-annotation rule {'on' if nearest_rule else 'off'}"


def replay(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    args: argparse.Namespace,
    seed: int,
    how: str,
    value: float,
    nearest_rule: bool,
) -> tuple[float, float, int]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    labeled = list(order[: args.labels])
    pool = np.ones(len(y), dtype=bool)
    pool[labeled] = False
    right_proposals = proposals = corrections = 0
    head = LinearHead.fit(x[labeled], y[labeled], k, multi_label=False)
    for _ in range(args.steps):
        rows = np.flatnonzero(pool)
        probs = head.proba(x[rows])
        top2 = np.sort(probs, axis=1)[:, -2:]
        task = int(rows[np.argmin(top2[:, 1] - top2[:, 0])])  # the queue's head: smallest margin
        served = int(head.proba(x[task : task + 1]).argmax())
        pool[task] = False
        labeled.append(task)
        head = LinearHead.fit(x[labeled], y[labeled], k, multi_label=False)
        if served == y[task]:
            continue
        corrections += 1
        lab = np.array(labeled)
        threshold = value if how == "cosine" else similarity_threshold(x[lab], y[lab], value, seed=seed).similarity
        rows = np.flatnonzero(pool)
        near_x, near_y = (x[lab], y[lab]) if nearest_rule else (x[:0], y[:0])
        chosen = rows[propose(x[task], int(y[task]), served, x[rows], head.proba(x[rows]), near_x, near_y, threshold)]
        chosen = chosen[: args.max_tasks]
        proposals += len(chosen)
        good = chosen[y[chosen] == y[task]]
        right_proposals += len(good)
        pool[chosen] = False  # the reviewer answered each: accepted ones become annotations
        labeled += [int(i) for i in good]
    return (right_proposals / proposals if proposals else float("nan"), proposals / max(corrections, 1), corrections)
