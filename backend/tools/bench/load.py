"""``hitl bench load``: many concurrent Label Studio-like clients against gunicorn, with a model
version published half-way through; every request must succeed.

Each client loops: POST /predict with a batch of AG News tasks, check that the answer has one
item per task with a result, record the latency and the version that answered. In the middle of
the run a new version is published into the registry the server reads (an atomic switch of
CURRENT); requests in flight finish on the old version, later ones get the new one. The baseline
in the same run is one client alone (its throughput and latency), measured first.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.models.encoder import encoder_from_settings
from backend.settings import Settings
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, dataset_dir, free_port, read_jsonl
from backend.tools.bench.predict import AG_CONFIG


@dataclass
class LoadResult:
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    tasks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + sum(self.errors.values())

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.requests} requests in {self.seconds:.0f}s, {sum(self.errors.values())} errors, "
            f"{self.tasks / self.seconds:.1f} tasks/s, p50 {self.percentile_ms(50):.0f} ms, "
            f"p99 {self.percentile_ms(99):.0f} ms, versions {dict(self.versions)}"
        )


def run_clients(
    url: str, bodies: list[dict[str, Any]], clients: int, seconds: float, at_half: Any = None, timeout_s: float = 120
) -> LoadResult:
    """``clients`` threads POST /predict in a loop for ``seconds``; ``at_half()`` runs half-way."""
    result = LoadResult(seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        with requests.Session() as session:
            i = n
            while time.monotonic() < stop:
                body = bodies[i % len(bodies)]
                i += clients
                started = time.perf_counter()
                try:
                    response = session.post(url + "/predict", json=body, timeout=timeout_s)
                    elapsed = time.perf_counter() - started
                    items = response.json().get("results") if response.status_code == 200 else None
                    if not items or len(items) != len(body["tasks"]) or any("result" not in it for it in items):
                        problem = f"HTTP {response.status_code}" if items is None else "incomplete answer"
                        with lock:
                            result.errors[problem] += 1
                        continue
                    with lock:
                        result.latencies_s.append(elapsed)
                        result.tasks += len(items)
                        result.versions[items[0]["model_version"]] += 1
                except (requests.RequestException, ValueError) as exc:
                    with lock:
                        result.errors[type(exc).__name__] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    if at_half is not None:
        time.sleep(seconds / 2)
        at_half()
    for t in threads:
        t.join(seconds + timeout_s)
    return result


def predict_bodies(texts: list[str], batch_size: int, config: str = AG_CONFIG) -> list[dict[str, Any]]:
    return [
        {
            "tasks": [{"id": start + i, "data": {"text": t}} for i, t in enumerate(texts[start : start + batch_size])],
            "project": "1.1764000000",
            "label_config": config,
            "params": {"login": None, "password": None, "context": None},
        }
        for start in range(0, len(texts), batch_size)
    ]


def bench_load(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    train = read_jsonl(folder / "train.jsonl", 400)
    texts = [r["text"] for r in read_jsonl(folder / "test.jsonl", 2000)]
    spec = parse_label_config(AG_CONFIG)
    encoder = encoder_from_settings(settings)
    model_name = encoder.name_or_path
    examples = [Example(r["text"], (r["label"],), i) for i, r in enumerate(train)]
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry")
        first = publish_head(registry, "1", spec, encoder, fit_head(encoder, spec, examples[:200]), examples[:200])
        second_head = fit_head(encoder, spec, examples)
        env = {
            "HITL_REGISTRY_DIR": str(registry.root),
            "HITL_MODEL_NAME": model_name,
            "HITL_DATA_DIR": tmp,
            "HITL_LOG_LEVEL": "WARNING",
        }
        bodies = predict_bodies(texts, args.batch_size)
        published: list[str] = []
        with backend_server(env, free_port(), workers=args.workers) as url:
            run_clients(url, bodies[:4], 2, 3)  # warm-up: every worker loads the version
            alone = run_clients(url, bodies, 1, args.baseline_seconds)
            print(alone.line("1 client (baseline)"))
            loaded = run_clients(
                url,
                bodies,
                args.clients,
                args.seconds,
                at_half=lambda: published.append(publish_head(registry, "1", spec, encoder, second_head, examples)),
            )
            print(loaded.line(f"{args.clients} clients"))
    second = published[0]
    print(
        f"version {first} served before the publish, {second} after: "
        f"{loaded.versions.get(first, 0)} and {loaded.versions.get(second, 0)} answers"
    )
    errors = sum(loaded.errors.values())
    ratio = (loaded.tasks / loaded.seconds) / max(alone.tasks / alone.seconds, 1e-9)
    print(
        f"errors={errors} p50_ms={loaded.percentile_ms(50):.0f} p99_ms={loaded.percentile_ms(99):.0f} "
        f"throughput_tasks_s={loaded.tasks / loaded.seconds:.1f} ratio_vs_one_client={ratio:.2f} "
        f"versions_served={len(loaded.versions)}"
    )
    return 0 if errors == 0 and loaded.versions.get(second, 0) > 0 else 1
