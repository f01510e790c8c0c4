"""Rescoring the pool after a head-only retrain, writing predictions in bulk, and the sync after a publish.

(a) 100,000 synthetic tasks whose embeddings are in the on-disk cache (as after earlier syncs):
    rescoring = cache lookup + a matrix product + ranking, vs. a full forward pass timed on a
    2,000-task sample and extrapolated to the pool.
    The forward pass is also what re-ranking costs after a fine-tune (a new encoder, same
    architecture and precision): the slow worker embeds the pool first (``jobs/pool_embedding.py``)
    and the fast queue stays free; it is printed as ``reembed_100k_s``.
(b) A real Label Studio on 127.0.0.1: 1,000 predictions through the bulk import vs. one API call
    per prediction.
(c) The same Label Studio: the product's sync after each publish of a new version family on a
    1,000-task project (every task gets a new prediction, the project switches, the head's ranks
    and headers are written): seconds per sync.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head
from backend.models.embedding_cache import EmbeddingCache, text_key
from backend.models.encoder import encoder_from_settings
from backend.query.strategies import make_strategy, rank
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from backend.tools.bench.common import dataset_dir, read_jsonl
from backend.tools.bench.predict import AG_CONFIG
from backend.tools.labelstudio_server import LocalLabelStudio


def bench_sync(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset, splits=("train",))
    rows = read_jsonl(folder / "train.jsonl", 500 + max(args.sample, args.predictions))
    spec = parse_label_config(AG_CONFIG)
    encoder = encoder_from_settings(settings)
    labelled = [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows[:500])]
    head = fit_head(encoder, spec, labelled)
    sample = [r["text"] for r in rows[500 : 500 + args.sample]]

    # (a) baseline: forward pass over a sample, extrapolated
    started = time.perf_counter()
    sample_emb = encoder.embed(sample)
    head.proba(sample_emb)
    forward_s = (time.perf_counter() - started) * args.pool / len(sample)

    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp), encoder)
        texts = [f"{sample[i % len(sample)]} [#{i}]" for i in range(args.pool)]
        rng = np.random.default_rng(0)
        noise = rng.normal(scale=0.02, size=(args.pool, encoder.dim)).astype(np.float32)
        vectors = sample_emb[np.arange(args.pool) % len(sample)] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        cache.store.write((text_key(t), v.tobytes()) for t, v in zip(texts, vectors, strict=True))
        fresh = EmbeddingCache(Path(tmp), encoder)  # a new process: nothing in memory, all on disk
        strategy = make_strategy("margin")
        task_ids = np.arange(args.pool)
        timings = []
        for _ in range(args.rounds):
            fresh.forget()
            started = time.perf_counter()
            x = fresh.embed(texts)
            order = rank(strategy, head.proba(x), x, task_ids)
            timings.append(time.perf_counter() - started)
        assert fresh.misses == 0 and len(order) == args.pool
        rescore_s = float(np.median(timings))
    print(f"(a) pool {args.pool:,}: rescore with cached embeddings {rescore_s:.2f}s (median of {args.rounds});")
    print(f"    full forward pass {forward_s:.0f}s (extrapolated from {len(sample):,}): {forward_s / rescore_s:.0f}x;")
    print(
        f"    after a fine-tune the slow worker embeds the pool in about that ({forward_s:.0f}s at "
        f"{encoder.precision}) before the sync, and head retrains meanwhile are not held up"
    )

    print("(b) starting Label Studio ...", flush=True)
    server = LocalLabelStudio.start()
    try:
        ls = LabelStudioClient(server.url, server.token)
        project = ls.create_project("Bulk benchmark", AG_CONFIG)
        ls.import_tasks(project, [{"text": f"task {i}"} for i in range(2 * args.predictions)])
        ids = [t["id"] for t in ls.tasks(project, page_size=1000)]
        result = [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["World"]}}]

        def payload(task_id: int) -> dict:
            return {"task": task_id, "result": result, "score": 0.5, "model_version": "bench", "cluster": 1}

        started = time.perf_counter()
        ls.import_predictions(project, [payload(t) for t in ids[: args.predictions]])
        bulk_s = time.perf_counter() - started
        started = time.perf_counter()
        for task_id in ids[args.predictions : 2 * args.predictions]:
            ls.create_prediction(payload(task_id))
        single_s = time.perf_counter() - started
        written = sum(len(t["predictions"]) for t in ls.tasks(project, page_size=1000))
        assert written == 2 * args.predictions, written
        print(f"(b) {args.predictions:,} predictions: bulk import {bulk_s:.2f}s, one call each {single_s:.1f}s")
        after_publish = _syncs_after_publishes(ls, settings, encoder, rows, args.predictions, args.rounds)
    finally:
        server.stop()
    print(
        f"(c) a sync after each publish of a new version family, {args.predictions:,}-task pool: "
        f"p50 {np.median(after_publish):.1f}s, max {max(after_publish):.1f}s ({len(after_publish)} publishes)"
    )
    reembed = forward_s * 100_000 / args.pool
    print(
        f"rescore_100k_s={rescore_s:.2f} bulk_vs_single={single_s / bulk_s:.1f} reembed_100k_s={reembed:.0f} "
        f"sync_after_publish_p50_s={np.median(after_publish):.1f}"
    )
    return 0


def _syncs_after_publishes(
    ls: LabelStudioClient, settings: Settings, encoder: Any, rows: list[dict], pool: int, publishes: int
) -> list[float]:
    """(c) The product's sync (``query/sync.py``, its defaults) after each publish of a new version
    family on a project of ``pool`` unlabeled tasks: every task gets a new prediction (bulk), the
    project switches, the head's ranks, headers and the review tab are written. Seconds per sync."""
    from backend.learning.candidates import publish_head
    from backend.query.sync import sync_project

    project = ls.create_project("Sync after publish", AG_CONFIG)
    ls.import_tasks(project, [{"text": r["text"]} for r in rows[500 : 500 + pool]])
    spec = parse_label_config(AG_CONFIG)
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        local = settings.model_copy(update={"data_dir": Path(tmp), "registry_dir": Path(tmp) / "registry"})
        registry, cache = Registry(local.registry_dir), EmbeddingCache(Path(tmp) / "cache", encoder)
        for round_ in range(publishes + 1):  # the first sync embeds the pool: not counted
            labelled = [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows[: 100 + 100 * round_])]
            publish_head(registry, str(project), spec, encoder, fit_head(encoder, spec, labelled), labelled)
            started = time.perf_counter()
            summary = sync_project(local, ls, cache, registry, project, progress=False)
            if round_:
                seconds.append(time.perf_counter() - started)
            assert summary.written == pool, summary.line()
    return seconds
