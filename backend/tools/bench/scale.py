"""What a sync costs as a project grows to 1M tasks, Label Studio aside: per pool size, the product's
own steps on a pool whose embeddings are cached (as after the first sync):

- cache lookup of every task's embedding (``EmbeddingCache``): read from disk by a fresh process, then
  from memory, as the next sync in the same worker reads it;
- rescoring: the head's probabilities and the strategy's scores (margin, the default);
- the first plan (``query/plan.py:plan_queue``, the product's defaults): every task gets a prediction;
- the incremental plan after a head refresh of the same version family (every confidence nudged):
  predictions kept, only the ranks and headers that moved are written;
- the sync's own reading and recording around that plan, in the product's stores (a SQLite file, or
  PostgreSQL with ``--shared-cache``): the pool from the snapshot the last sync kept (Label Studio
  reports no change: its own part is measured with ``--label-studio``), the last sync's record, and
  the rows that moved;
- the process's peak memory.

The pool's texts and embeddings are synthetic (four classes around random centres, 384 dimensions
like the bundled encoder's); the head is the product's, fitted on 400 of them. The baseline in the
same run is the smallest pool: the last line prints each step's growth against it (1.0 = linear).
With ``--label-studio N``, also a real Label Studio 1.23.2 on this machine's PostgreSQL (as its
production set-up runs it): N tasks of ``--dataset`` imported by ``hitl import``'s importer, the
first sync after a published head (every task embedded, predicted and written), and the sync after
a head refresh of the same family (predictions kept, moved ranks written, only the tasks Label
Studio changed read), each timed; the last line's figure is the second such sync (the first reads
again the tasks the import stamped within the change overlap).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from backend.labeling import parse_label_config
from backend.memory import collector_paused
from backend.models.embedding_cache import EmbeddingCache, text_key
from backend.models.head import LinearHead
from backend.query.plan import Findings, Scored, plan_queue
from backend.query.pool import Pool, read_pool
from backend.query.strategies import make_strategy
from backend.serving.items import ChoiceResults
from backend.serving.routing import RoutingPolicy
from backend.settings import Settings
from backend.stores.queue_state import PoolMark, PoolSnapshot, SyncState
from backend.tools.bench import scale_label_studio
from backend.tools.bench.predict import AG_CONFIG
from backend.tools.bench.serving_probe import percentiles_ms, serving

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
    rows: list[dict[str, Any]] = []
    predict = ""
    with (
        serving(settings) if args.predict else contextlib.nullcontext() as probe,
        scale_label_studio.scratch_database(args.postgres) if args.shared_cache else contextlib.nullcontext() as shared,
    ):
        alone = probe.measure(args.predict) if probe is not None else []
        for n in sizes:
            during = probe.during if probe is not None and n == sizes[-1] else None
            rows.append(_one_size(n, rng, centres, head, spec, settings, during, shared))
            r = rows[-1]
            print(
                f"{n:>9,} tasks: lookup {r['lookup']:.1f}s (from memory {r['warm']:.1f}s), "
                f"rescore {r['rescore']:.2f}s, first plan {r['plan']:.1f}s ({r['writes']:,.0f} predictions), "
                f"incremental plan {r['incremental']:.1f}s ({r['incremental_writes']:,.0f} task writes), "
                f"pool from the snapshot, with the lookup from memory {r['snapshot_read']:.1f}s (filled in "
                f"{r['snapshot_fill']:.1f}s), record {r['record']:.1f}s ({r['record_rows']:,.0f} rows), "
                f"peak memory {r['rss_gib']:.2f} GiB",
                flush=True,
            )
        if probe is not None:
            (p50, p99), (busy50, busy99) = percentiles_ms(alone), percentiles_ms(rows[-1]["during"])
            serving_gib = probe.peak_rss_gib()
            print(
                f"/predict, one task per request: alone p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(alone)} requests); "
                f"during the {sizes[-1]:,}-task steps p50 {busy50:.0f} ms, p99 {busy99:.0f} ms "
                f"({len(rows[-1]['during'])} requests); server's peak memory {serving_gib:.2f} GiB per process",
                flush=True,
            )
            predict = (
                f" predict_p50_ms={p50:.0f} predict_p99_ms={p99:.0f} predict_p50_during_ms={busy50:.0f} "
                f"predict_p99_during_ms={busy99:.0f} serving_peak_gib={serving_gib:.2f}"
            )
    if args.label_studio:
        ls = scale_label_studio.first_and_incremental_syncs(args, settings)
    changes = scale_label_studio.changes_read(args) if args.label_studio_changes else {}
    writes = scale_label_studio.prediction_writes(args) if args.label_studio_writes else {}
    base, last = rows[0], rows[-1]
    scale = last["n"] / base["n"]
    growth = {k: (last[k] / base[k]) / scale for k in ("lookup", "rescore", "plan", "incremental", "snapshot_read")}
    # a worker that synced the project before (the lookup from memory is in the snapshot read)
    own = last["snapshot_read"] + last["rescore"] + last["incremental"] + last["record"]
    print(
        f"rescore_plan_{last['n']:.0f}_s={last['warm'] + last['rescore'] + last['incremental']:.2f} "
        f"incremental_own_{last['n']:.0f}_s={own:.2f} "
        f"first_plan_{last['n']:.0f}_s={last['plan']:.2f} peak_gib={last['rss_gib']:.2f} "
        + " ".join(f"growth_{k}={v:.2f}" for k, v in growth.items())
        + (
            f" ls_import_{args.label_studio}_s={ls['import']:.0f} ls_first_sync_s={ls['first']:.0f} "
            f"ls_incremental_sync_s={ls['incremental']:.1f}"
            if args.label_studio
            else ""
        )
        + predict
        + "".join(f" ls_{k}_{args.label_studio_changes}_s={v:.2f}" for k, v in changes.items())
        + "".join(
            f" ls_{k}_{args.label_studio_writes}{'' if 'per_s' in k else '_s'}={v:.2f}" for k, v in writes.items()
        )
    )
    return 0


def _head(rng: np.random.Generator, centres: np.ndarray, labels: list[str]) -> LinearHead:
    y = np.arange(400) % len(labels)
    return LinearHead.fit(_vectors(rng, centres, y), y, len(labels), multi_label=False)


def _vectors(rng: np.random.Generator, centres: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = centres[y] + rng.normal(scale=2.0, size=(len(y), DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _one_size(
    n: int,
    rng: np.random.Generator,
    centres: np.ndarray,
    head: LinearHead,
    spec: Any,
    settings: Settings,
    during: Callable[[], AbstractContextManager[list[float]]] | None = None,
    shared: str | None = None,
) -> dict[str, Any]:
    """The timed steps at ``n`` tasks; ``during``: a probe that asks ``/predict`` throughout them;
    ``shared``: the PostgreSQL URL the embedding cache keeps its vectors in (else a SQLite file)."""
    texts = [f"synthetic task {i}: a short news text" for i in range(n)]
    ids = list(range(1, n + 1))
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp), _Identity(), shared)  # type: ignore[arg-type]
        vectors = _vectors(rng, centres, rng.integers(0, len(centres), n))
        cache.store.write((text_key(t), v.tobytes()) for t, v in zip(texts, vectors, strict=True))
        del vectors
        fresh = EmbeddingCache(Path(tmp), _Identity(), shared)  # type: ignore[arg-type]
        label = "v2-20261207000000"
        probing = during() if during is not None else contextlib.nullcontext([])
        seen = probing.__enter__()
        started = time.perf_counter()
        _, x = fresh.embed_readable(texts)  # as the sync reads its pool
        lookup = time.perf_counter() - started
        started = time.perf_counter()
        fresh.embed_readable(texts)  # the next sync in the same worker: from memory
        warm = time.perf_counter() - started

        started = time.perf_counter()
        with collector_paused():  # as the sync scores and plans (backend/memory.py)
            probs = head.proba(x)
            scored = _scored(spec, label, probs, make_strategy("margin").scores(probs, x, np.asarray(ids)), n)
        rescore = time.perf_counter() - started

        pool = Pool(
            ids=ids,
            texts=texts,
            data=[{"text": t} for t in texts],
            predictions={t: {} for t in ids},
            embeddings=x,
            size=n,
        )
        policy = RoutingPolicy(0.95, settings.audit_share, settings.holdout_fraction, preselect_level=0.8)
        started = time.perf_counter()
        with collector_paused():
            first = plan_queue(
                1, pool, spec, scored, policy, Findings(np.zeros(n, dtype=bool), set(range(5))), settings
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
        refreshed = _scored(spec, label, nudged, make_strategy("margin").scores(nudged, x, np.asarray(ids)), n)
        findings = Findings(np.zeros(n, dtype=bool), set(range(5)), previous=previous)
        started = time.perf_counter()
        with collector_paused():
            again = plan_queue(1, pool, spec, refreshed, policy, findings, settings)
        incremental = time.perf_counter() - started
        store = _sync_store_steps(Path(tmp), shared, spec, first, again, pool, fresh)
        probing.__exit__(None, None, None)
        assert not again.predictions, "a family's predictions are never rewritten"
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "n": n,
        "lookup": lookup,
        "warm": warm,
        "rescore": rescore,
        "plan": plan_s,
        "writes": len(first.predictions),
        "incremental": incremental,
        "incremental_writes": len(again.task_writes),
        **store,
        "rss_gib": rss_gib,
        "during": list(seen),
    }


class _Unchanged:
    """Label Studio as the sync's read of changes sees it when nothing changed: no task, and the
    same count. Its own cost at scale is measured against a real one (``--label-studio``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def changed_tasks(self, project_id: int, since: str) -> list[dict[str, Any]]:
        return []

    def pool_mark(self, project_id: int, overlap_s: float) -> tuple[int, str]:
        return self.n, "2026-12-07T00:00:00.000000Z"


def _sync_store_steps(
    folder: Path, shared: str | None, spec: Any, first: Any, again: Any, pool: Pool, cache: EmbeddingCache
) -> dict[str, float]:
    """The incremental sync's reading and recording around its plan, timed in the product's stores:
    the snapshot filled by a full read, the pool read from it (embeddings from ``cache``'s memory, as
    in a worker that synced the project before), the record written after each plan."""
    location = shared or folder / "sync-state.sqlite3"
    snapshot, state, label = PoolSnapshot(location), SyncState(location), first.state_rows[0][1]
    listed = [
        {"id": t, "data": d, "predictions": [p] if p else [], "total_annotations": 0}
        for t, d, p in zip(pool.ids, pool.data, (pool.predictions[t].get(label) for t in pool.ids), strict=True)
    ]
    with collector_paused():
        started = time.perf_counter()
        snapshot.replace(1, listed, label)
        snapshot.set_mark(1, PoolMark(label, "2026-12-07T00:00:00.000000Z", time.time()))
        fill = time.perf_counter() - started
        state.save(1, first.state_rows, {})
        started = time.perf_counter()
        read = read_pool(_Unchanged(len(listed)), 1, spec, cache, 2000, False, snapshot, label, 86400)  # type: ignore[arg-type]
        previous = state.get(1)
        read_s = time.perf_counter() - started
        assert not read.read.full and read.ids == pool.ids, read.read.how
        started = time.perf_counter()
        rows = state.save(1, again.state_rows, previous)
        snapshot.wrote(1, again.predictions, again.task_writes)
        record_s = time.perf_counter() - started
    return {"snapshot_fill": fill, "snapshot_read": read_s, "record": record_s, "record_rows": rows}


def _scored(spec: Any, label: str, probs: np.ndarray, strategy_scores: np.ndarray, n: int) -> Scored:
    """What the sync's scoring stage gives the plan: answers as ``serving/items.py`` builds them."""
    answers = ChoiceResults(spec, [[spec.labels[k]] for k in probs.argmax(axis=1).tolist()])
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
