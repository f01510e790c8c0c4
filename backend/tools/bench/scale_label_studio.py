"""``hitl bench scale``'s parts against a real Label Studio 1.23.2 on PostgreSQL, as its production
set-up runs it: a project's first sync and the syncs after head refreshes (``--label-studio``), its
side of a sync that reads only what changed (``--label-studio-changes``), and its bulk prediction
writes with and without its memory-efficient import (``--label-studio-writes``). Each makes a
database of its own on ``--postgres`` and drops it after.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from backend.labeling import parse_label_config
from backend.models.embedding_cache import EmbeddingCache
from backend.settings import Settings
from backend.tools.bench.predict import AG_CONFIG

# Label Studio's feature flag for its memory-efficient prediction import (data_import/api.py): with it
# off, its default, every bulk import of predictions recounts every task of the project
MEMORY_EFFICIENT_IMPORT = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"
CHUNK = 1000  # predictions per call, as the sync writes them (query/sync.py)
TIMED_CALLS = 3
READ_PAGES = (500, 5000)  # the client's page size for a full read before, and now (FULL_READ_PAGE)
READ_TASKS = 20_000


def first_and_incremental_syncs(args: argparse.Namespace, settings: Settings) -> dict[str, float]:
    import json

    from backend.admin.importer import import_file
    from backend.labeling.examples import Example
    from backend.learning.candidates import fit_head, publish_head
    from backend.models.encoder import encoder_from_settings
    from backend.query.sync import sync_project
    from backend.stores.labelstudio import LabelStudioClient
    from backend.stores.registry import Registry
    from backend.tools.bench.common import dataset_dir, read_jsonl
    from backend.tools.labelstudio_server import LocalLabelStudio

    n = int(args.label_studio)
    rows = read_jsonl(dataset_dir(args.data, args.dataset, splits=("train",)) / "train.jsonl", n + 1000)
    spec = parse_label_config(AG_CONFIG)
    labelled = [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows[:600])]
    texts = [
        rows[1000 + i % (len(rows) - 1000)]["text"] + ("" if i < len(rows) - 1000 else f" [#{i}]") for i in range(n)
    ]
    with scratch_database(args.postgres) as url:
        server = LocalLabelStudio.start(database_url=url)
        try:
            ls = LabelStudioClient(server.url, server.token)
            project = ls.create_project("Scale benchmark", AG_CONFIG)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "tasks.jsonl"
                path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
                started = time.perf_counter()
                imported = import_file(ls, project, spec, path, progress=True).imported
                import_s = time.perf_counter() - started
                print(f"Label Studio on PostgreSQL: {imported:,} tasks imported in {import_s:.0f}s", flush=True)
                local = settings.model_copy(update={"data_dir": Path(tmp), "registry_dir": Path(tmp) / "registry"})
                encoder = encoder_from_settings(local)
                registry, cache = Registry(local.registry_dir), EmbeddingCache(Path(tmp) / "cache", encoder)
                first = publish_head(
                    registry, str(project), spec, encoder, fit_head(encoder, spec, labelled[:500]), labelled[:500]
                )
                started = time.perf_counter()
                summary = sync_project(local, ls, cache, registry, project, progress=True)
                first_s = time.perf_counter() - started
                print(f"first sync: {first_s:.0f}s, {summary.line()}", flush=True)
                incremental_s = 0.0
                for refresh in (1, 2):  # the first reads again what the import stamped in the overlap before it
                    publish_head(
                        registry,
                        str(project),
                        spec,
                        encoder,
                        fit_head(encoder, spec, labelled[: 500 + 50 * refresh]),
                        labelled[: 500 + 50 * refresh],
                        extra={"family": first},
                    )  # a head refresh: the same family
                    started = time.perf_counter()
                    again = sync_project(local, ls, cache, registry, project, progress=False)
                    incremental_s = time.perf_counter() - started
                    print(f"sync after head refresh {refresh}: {incremental_s:.1f}s, {again.line()}", flush=True)
        finally:
            server.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of this process (the sync's, with the encoder loaded): {rss:.2f} GiB")
    return {"import": import_s, "first": first_s, "incremental": incremental_s}


def changes_read(args: argparse.Namespace) -> dict[str, float]:
    """Label Studio's side of a sync that reads only what changed, in a project of
    ``--label-studio-changes`` tasks (a real Label Studio 1.23.2 on PostgreSQL): its count of the
    unlabeled tasks, and the read of the tasks changed since the last sync after 20 annotations,
    60 rank writes and 100 imported tasks; medians of 3 reads."""
    from backend.stores.labelstudio import LabelStudioClient
    from backend.tools.bench.common import dataset_dir, read_jsonl
    from backend.tools.labelstudio_server import LocalLabelStudio

    n = int(args.label_studio_changes)
    rows = read_jsonl(dataset_dir(args.data, args.dataset, splits=("train",)) / "train.jsonl", 200_000)
    with scratch_database(args.postgres) as url:
        server = LocalLabelStudio.start(database_url=url)
        try:
            ls = LabelStudioClient(server.url, server.token, timeout_s=600)
            project = ls.create_project("Changes benchmark", AG_CONFIG)
            started = time.perf_counter()
            chunk = 5000
            for start in range(0, n, chunk):  # as `hitl import` sends them, without its duplicate check
                ls.import_tasks(
                    project,
                    [{"text": f"{rows[i % len(rows)]['text']} [#{i}]"} for i in range(start, min(n, start + chunk))],
                )
                print(f"\rimported {min(n, start + chunk):,} tasks", end="", flush=True)
            import_s = time.perf_counter() - started
            print(f"\nLabel Studio on PostgreSQL: {n:,} tasks imported in {import_s:.0f}s", flush=True)
            _, since = ls.pool_mark(project, 0)
            first = []
            for task in ls.listed_unlabeled(project, page_size=100):
                first.append(task)
                if len(first) == 80:
                    break
            for task in first[:20]:
                ls.create_annotation(int(task["id"]), [_choice("World")])
            for k, task in enumerate(first[20:]):
                ls.update_task_data(int(task["id"]), {**task["data"], "hitl_rank": k + 1})
            ls.import_tasks(project, [{"text": f"a new task {i}"} for i in range(100)])
            counts, reads = [], []
            for _ in range(3):
                started = time.perf_counter()
                count, _ = ls.pool_mark(project, 0)
                counts.append(time.perf_counter() - started)
                started = time.perf_counter()
                changed = list(ls.changed_tasks(project, since))
                reads.append(time.perf_counter() - started)
            assert len(changed) == 180 and count == n + 80, (len(changed), count)
        finally:
            server.stop()
    figures = {"count": float(np.median(counts)), "changes_read": float(np.median(reads))}
    print(
        f"Label Studio, {n:,} tasks: count of the unlabeled {figures['count']:.2f}s, read of the "
        f"{len(changed)} tasks changed since the last sync {figures['changes_read']:.2f}s (median of 3)",
        flush=True,
    )
    return figures


def _choice(label: str) -> dict[str, Any]:
    return {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A database of its own on ``admin_url``'s server, dropped after."""
    import uuid

    import psycopg

    name = f"hitl_bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def prediction_writes(args: argparse.Namespace) -> dict[str, float]:
    """Label Studio's bulk prediction writes in a project of ``--label-studio-writes`` tasks, 1,000 per
    call through the sync's own client: with Label Studio's defaults, where each call recounts every
    task of the project, then, on the same project and database, with ``MEMORY_EFFICIENT_IMPORT``
    on, where each call recounts only the tasks it wrote; then every remaining task's prediction
    with the flag on. Seconds per call are medians of ``TIMED_CALLS``."""
    from backend.stores.labelstudio import LabelStudioClient
    from backend.tools.bench.common import dataset_dir, read_jsonl
    from backend.tools.labelstudio_server import LocalLabelStudio

    n = int(args.label_studio_writes)
    rows = read_jsonl(dataset_dir(args.data, args.dataset, splits=("train",)) / "train.jsonl", 200_000)
    timed = 2 * TIMED_CALLS * CHUNK
    if n <= timed:
        raise SystemExit(f"--label-studio-writes needs more than {timed} tasks")
    with scratch_database(args.postgres) as url, tempfile.TemporaryDirectory() as folder:

        def started(flag: bool) -> LocalLabelStudio:
            environment = {MEMORY_EFFICIENT_IMPORT: "true" if flag else "false"}
            return LocalLabelStudio.start(data_dir=Path(folder), database_url=url, environment=environment)

        server = started(False)
        try:
            ls = LabelStudioClient(server.url, server.token, timeout_s=900)
            project = ls.create_project("Writes benchmark", AG_CONFIG)
            ids, import_s = _import_with_ids(ls, project, n, rows)
            default = _writes(ls, project, ids[: TIMED_CALLS * CHUNK])
        finally:
            server.stop()
        server = started(True)
        try:
            ls = LabelStudioClient(server.url, server.token, timeout_s=900)
            flagged = _writes(ls, project, ids[TIMED_CALLS * CHUNK : timed])
            begun = time.perf_counter()
            rest = _writes(ls, project, ids[timed:], progress=True)
            rest_s = time.perf_counter() - begun
            held = ls.project(project).get("total_predictions_number")
            reads = {size: _read_rate(ls, project, size, READ_TASKS) for size in READ_PAGES}
        finally:
            server.stop()
    assert held == n, f"Label Studio holds {held} predictions for {n} tasks"
    figures = {
        "import": import_s,
        "write_default": float(np.median(default)),
        "write_flag": float(np.median(flagged)),
        "write_flag_last": float(np.median(rest[-TIMED_CALLS:])),
        "write_all_flag": rest_s + sum(flagged),
        **{f"read_tasks_per_s_page_{size}": rate for size, rate in reads.items()},
    }
    print(
        f"Label Studio, {n:,} tasks imported in {import_s:.0f}s; 1,000 predictions per call: "
        f"{figures['write_default']:.2f}s with its defaults, {figures['write_flag']:.2f}s with "
        f"{MEMORY_EFFICIENT_IMPORT} ({figures['write_default'] / figures['write_flag']:.1f}x faster), "
        f"{figures['write_flag_last']:.2f}s for the last calls; every prediction with the flag on "
        f"{figures['write_all_flag']:.0f}s (medians of {TIMED_CALLS} calls); the pool read with its predictions: "
        + ", ".join(f"{rate:.0f} tasks/s at {size} per page" for size, rate in reads.items()),
        flush=True,
    )
    return figures


def _read_rate(ls: Any, project: int, page_size: int, tasks: int) -> float:
    """Tasks per second of a full read's first ``tasks`` tasks (the sync's ``listed_unlabeled``),
    ``page_size`` per page."""
    started, read = time.perf_counter(), 0
    for _ in ls.listed_unlabeled(project, page_size=page_size):
        read += 1
        if read == tasks:
            break
    return read / (time.perf_counter() - started)


def _import_with_ids(ls: Any, project: int, n: int, rows: list[dict[str, Any]]) -> tuple[list[int], float]:
    """``n`` tasks imported 5,000 per call, as ``hitl import`` sends them (without its duplicate
    check), with their ids."""
    ids: list[int] = []
    started = time.perf_counter()
    for start in range(0, n, 5000):
        tasks = [{"text": f"{rows[i % len(rows)]['text']} [#{i}]"} for i in range(start, min(n, start + 5000))]
        ids += ls.sdk.projects.import_tasks(id=project, request=tasks, return_task_ids=True).task_ids or []
        print(f"\rimported {len(ids):,} tasks", end="", flush=True)
    print(flush=True)
    return ids, time.perf_counter() - started


def _writes(ls: Any, project: int, ids: list[int], progress: bool = False) -> list[float]:
    """One prediction per task of ``ids``, ``CHUNK`` per call as the sync sends them; each call's seconds."""
    from tqdm import tqdm

    seconds = []
    for start in tqdm(range(0, len(ids), CHUNK), desc="writing", unit="call", disable=not progress):
        predictions = [
            {"task": t, "model_version": "v1-bench", "score": 0.5, "result": [_choice("World")]}
            for t in ids[start : start + CHUNK]
        ]
        begun = time.perf_counter()
        ls.import_predictions(project, predictions)
        seconds.append(time.perf_counter() - begun)
    return seconds
