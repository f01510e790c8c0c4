"""What a sync costs as a project grows to 1M tasks, Label Studio aside: per pool size, the product's
own steps on a pool whose embeddings are cached (as after the first sync):

- cache lookup of every task's embedding (``EmbeddingCache``, read from disk by a fresh process);
- rescoring: the head's probabilities and the strategy's scores (margin, the default);
- the first plan (``query/plan.py:plan_queue``, the product's defaults): every task gets a prediction;
- the incremental plan after a head refresh of the same version family (every confidence nudged):
  predictions kept, only the ranks and headers that moved are written;
- the process's peak memory.

The pool's texts and embeddings are synthetic (four classes around random centres, 384 dimensions
like the bundled encoder's); the head is the product's, fitted on 400 of them. The baseline in the
same run is the smallest pool: the last line prints each step's growth against it (1.0 = linear).
Label Studio's side (import, prediction and rank writes) is measured by ``hitl bench sync``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.labeling import parse_label_config
from backend.models.embedding_cache import EmbeddingCache, text_key
from backend.models.head import LinearHead
from backend.query.plan import Findings, Scored, plan_queue
from backend.query.pool import Pool
from backend.query.strategies import make_strategy
from backend.serving.routing import RoutingPolicy
from backend.settings import Settings
from backend.tools.bench.predict import AG_CONFIG

DIM = 384


class _Identity:
    """What the cache needs of an encoder: who it is and how wide its vectors are (nothing is embedded)."""

    identity = "bench-scale-synthetic"
    dim = DIM
    precision = "float32"

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("every text is cached: nothing may be embedded")


def bench_scale(args: argparse.Namespace, settings: Settings) -> int:
    sizes = [int(s) for s in str(args.sizes).split(",")]
    spec = parse_label_config(AG_CONFIG)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(spec.labels), DIM)).astype(np.float32)
    head = _head(rng, centres, spec.labels)
    rows: list[dict[str, float]] = []
    for n in sizes:
        rows.append(_one_size(n, rng, centres, head, spec, settings))
        r = rows[-1]
        print(
            f"{n:>9,} tasks: lookup {r['lookup']:.1f}s, rescore {r['rescore']:.2f}s, first plan {r['plan']:.1f}s "
            f"({r['writes']:,.0f} predictions), incremental plan {r['incremental']:.1f}s "
            f"({r['incremental_writes']:,.0f} task writes), peak memory {r['rss_gib']:.2f} GiB",
            flush=True,
        )
    base, last = rows[0], rows[-1]
    scale = last["n"] / base["n"]
    growth = {k: (last[k] / base[k]) / scale for k in ("lookup", "rescore", "plan", "incremental")}
    print(
        f"rescore_plan_{last['n']:.0f}_s={last['lookup'] + last['rescore'] + last['incremental']:.1f} "
        f"first_plan_{last['n']:.0f}_s={last['plan']:.1f} peak_gib={last['rss_gib']:.2f} "
        + " ".join(f"growth_{k}={v:.2f}" for k, v in growth.items())
    )
    return 0


def _head(rng: np.random.Generator, centres: np.ndarray, labels: list[str]) -> LinearHead:
    y = np.arange(400) % len(labels)
    return LinearHead.fit(_vectors(rng, centres, y), y, len(labels), multi_label=False)


def _vectors(rng: np.random.Generator, centres: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = centres[y] + rng.normal(scale=2.0, size=(len(y), DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _one_size(
    n: int, rng: np.random.Generator, centres: np.ndarray, head: LinearHead, spec: Any, settings: Settings
) -> dict[str, float]:
    texts = [f"synthetic task {i}: a short news text" for i in range(n)]
    ids = list(range(1, n + 1))
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp), _Identity())  # type: ignore[arg-type]
        vectors = _vectors(rng, centres, rng.integers(0, len(centres), n))
        cache._db.executemany(
            "INSERT INTO emb VALUES (?, ?)", ((text_key(t), v.tobytes()) for t, v in zip(texts, vectors, strict=True))
        )
        del vectors
        fresh = EmbeddingCache(Path(tmp), _Identity())  # type: ignore[arg-type]
        started = time.perf_counter()
        x = fresh.embed(texts)
        lookup = time.perf_counter() - started

        started = time.perf_counter()
        probs = head.proba(x)
        strategy_scores = make_strategy("margin").scores(probs, x, np.asarray(ids))
        rescore = time.perf_counter() - started

        pool = Pool(
            ids=ids,
            texts=texts,
            data=[{"text": t} for t in texts],
            predictions={t: {} for t in ids},
            embeddings=x,
            size=n,
        )
        label = "v2-20261207000000"
        policy = RoutingPolicy(0.95, settings.audit_share, settings.holdout_fraction, preselect_level=0.8)
        started = time.perf_counter()
        first = plan_queue(
            1,
            pool,
            spec,
            _scored(spec, label, probs, strategy_scores, n),
            policy,
            Findings(np.zeros(n, dtype=bool), set(range(5))),
            settings,
        )
        plan_s = time.perf_counter() - started

        # the same family after a head refresh: Label Studio holds the first plan's predictions and task data
        written = dict(first.task_writes)
        for i, t in enumerate(ids):
            if t in written:
                pool.data[i] = written[t]
        for p in first.predictions:
            pool.predictions[p["task"]] = {label: p}
        previous = {row[0]: tuple(row[1:]) for row in first.state_rows}
        previous = {t: (r[0], r[1], r[2], r[3], r[5], r[6], r[7]) for t, r in previous.items()}
        nudged = np.clip(probs + rng.normal(scale=0.02, size=probs.shape), 1e-6, None)
        nudged /= nudged.sum(axis=1, keepdims=True)
        started = time.perf_counter()
        again = plan_queue(
            1,
            pool,
            spec,
            _scored(spec, label, nudged, make_strategy("margin").scores(nudged, x, np.asarray(ids)), n),
            policy,
            Findings(np.zeros(n, dtype=bool), set(range(5)), previous=previous),
            settings,
        )
        incremental = time.perf_counter() - started
        assert not again.predictions, "a family's predictions are never rewritten"
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "n": n,
        "lookup": lookup,
        "rescore": rescore,
        "plan": plan_s,
        "writes": len(first.predictions),
        "incremental": incremental,
        "incremental_writes": len(again.task_writes),
        "rss_gib": rss_gib,
    }


def _scored(spec: Any, label: str, probs: np.ndarray, strategy_scores: np.ndarray, n: int) -> Scored:
    top = probs.argmax(axis=1)
    answers = [
        [
            {
                "from_name": spec.from_name,
                "to_name": spec.to_name,
                "type": "choices",
                "value": {"choices": [spec.labels[k]]},
            }
        ]
        for k in top
    ]
    return Scored(
        label=label,
        has_model=True,
        answers=answers,
        confidence=probs.max(axis=1),
        strategy_scores=strategy_scores,
        diverse=False,
        clusters=np.arange(n) % 20,
        disagree=np.zeros(n, dtype=bool),
    )
