"""Correction → served version, end to end: Label Studio webhook → RQ worker → registry → server.

Runs a real Label Studio (installed on demand), a private Redis, `hitl serve` and `hitl worker`
as processes. A project with N AG News annotations is imported (import fires no webhooks), one
retrain warms the embedding cache, then each run annotates one more task through Label Studio's
API and times until a new version is published and the server answers /predict with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from backend.jobs.queue import RetrainQueue
from backend.services.embedded_redis import EmbeddedRedis
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, dataset_dir, free_port, read_jsonl
from backend.tools.bench.predict import AG_CONFIG
from backend.tools.labelstudio_server import LocalLabelStudio

SECRET = "bench-secret"


def _choice(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def _wait_version(url: str, registry: Registry, project: int, old: str | None, timeout_s: float) -> str:
    """Until a new version is published and the server answers a /predict with it loaded. (Label
    Studio sees the version's family, which a head refresh keeps, so /setup cannot tell.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        version = registry.current(project)
        if version and version != old:
            body = {"project": f"{project}.0", "label_config": AG_CONFIG, "tasks": [{"id": 0, "data": {"text": "x"}}]}
            answer = requests.post(url + "/predict", json=body, timeout=60).json()["results"][0]
            if answer["model_version"] == registry.served(project, version):
                return version
        time.sleep(0.05)
    raise RuntimeError(f"no new version within {timeout_s}s")


def bench_retrain(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset, splits=("train",))
    rows = read_jsonl(folder / "train.jsonl", args.annotations + 2 * args.runs + 1)
    labelled, fresh = rows[: args.annotations], rows[args.annotations :]
    print(f"starting Label Studio, Redis, backend and worker (annotations: {args.annotations}) ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ls_server = LocalLabelStudio.start()
        redis_server = EmbeddedRedis(Path(tmp) / "redis", port=free_port()).start()
        worker = None
        try:
            env = {
                "HITL_REDIS_URL": redis_server.url,
                "HITL_LABEL_STUDIO_URL": ls_server.url,
                "HITL_LABEL_STUDIO_API_KEY": ls_server.token,
                "HITL_REGISTRY_DIR": str(Path(tmp) / "registry"),
                "HITL_DATA_DIR": tmp,
                "HITL_WEBHOOK_SECRET": SECRET,
                "HITL_LOG_LEVEL": "WARNING",
                # time the fast path alone; the full fine-tune is timed on its own below
                "HITL_FINETUNE_EVERY": "0",
                "HITL_SYNC_AFTER_PUBLISH": "false",
            }
            worker = subprocess.Popen(
                [sys.executable, "-m", "backend", "worker"],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with backend_server(env, free_port()) as url:
                ls = LabelStudioClient(ls_server.url, ls_server.token)
                project = ls.create_project("Retrain benchmark", AG_CONFIG)
                annotated = [
                    {"data": {"text": r["text"]}, "annotations": [{"result": _choice(r["label"])}]} for r in labelled
                ]
                ls.import_tasks(project, annotated)
                ls.import_tasks(project, [{"text": r["text"], "gold": r["label"]} for r in fresh])
                ls.connect_backend(project, url)
                ls.ensure_webhook(project, url + "/webhook", {"X-Hitl-Webhook-Secret": SECRET})
                pending = [t for t in ls.tasks(project) if not t["annotations"]]

                started = time.perf_counter()
                task = pending.pop()
                ls.create_annotation(task["id"], _choice(task["data"]["gold"]))
                registry = Registry(Path(tmp) / "registry")
                version = _wait_version(url, registry, project, None, 600)
                print(f"first version (embeds all {args.annotations + 1} texts): {time.perf_counter() - started:.1f}s")

                def corrections() -> tuple[list[float], int]:
                    """Timed corrections, each until a new version answers; (seconds, gate rejections)."""
                    nonlocal version
                    times, rejected = [], 0
                    for _ in range(args.runs):
                        task = pending.pop()
                        started = time.perf_counter()
                        ls.create_annotation(task["id"], _choice(task["data"]["gold"]))
                        try:
                            new = _wait_version(url, registry, project, version, 120)
                        except RuntimeError:
                            rejected += 1
                            continue
                        times.append(time.perf_counter() - started)
                        version = new
                        print(f"  correction → serving {new}: {times[-1]:.2f}s", flush=True)
                    return times, rejected

                times, rejected = corrections()

                queue_settings = Settings(redis_url=redis_server.url, retrain_debounce_s=0)
                started = time.perf_counter()
                RetrainQueue(queue_settings).request(project, kind="full", reason="benchmark")
                version = _wait_version(url, registry, project, version, 1800)
                full_s = time.perf_counter() - started
                meta = registry.meta(str(project), version)
                print(
                    f"full fine-tune: {full_s:.1f}s on {meta['training']['train_examples']} examples, "
                    f"{settings.finetune_epochs} epochs; held-out {meta['metrics']}"
                )
                print("corrections with the fine-tuned encoder serving (heads on its embeddings):", flush=True)
                tuned_times, tuned_rejected = corrections()
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
            redis_server.stop()
            ls_server.stop()
    if not times:
        print("no run produced a new version")
        return 1
    median = statistics.median(times)
    tuned = statistics.median(tuned_times) if tuned_times else float("nan")
    print(
        f"runs: {len(times)} (gate rejections: {rejected}); median correction → serving {median:.2f}s; after the "
        f"fine-tune: {len(tuned_times)} runs (gate rejections: {tuned_rejected}), median {tuned:.2f}s"
    )
    print(
        f"correction_to_serving_s={median:.2f} full_finetune_s={full_s:.1f} "
        f"correction_to_serving_finetuned_s={tuned:.2f}"
    )
    return 0
