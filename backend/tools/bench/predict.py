"""/predict throughput through the real HTTP stack (gunicorn) vs the raw model and a naive loop."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import requests
import torch

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.models.encoder import TextEncoder, encoder_from_settings
from backend.settings import Settings
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, data_dir, free_port, median_time, read_jsonl

AG_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="topic" toName="text">'
    '<Choice value="World"/><Choice value="Sports"/><Choice value="Business"/><Choice value="Sci/Tech"/>'
    "</Choices></View>"
)


def bench_predict(args: argparse.Namespace, settings: Settings) -> int:
    data = data_dir(args.data)
    train = read_jsonl(data / "ag_news" / "train.jsonl", 300)
    n = args.batches * args.batch_size
    texts = [r["text"] for r in read_jsonl(data / "ag_news" / "test.jsonl", n)]
    spec = parse_label_config(AG_CONFIG)
    encoder = encoder_from_settings(settings)
    model_name = encoder.name_or_path
    # The naive baseline: what a straightforward backend does, one float32 forward pass per task.
    plain = TextEncoder(model_name, settings.max_length, 1, model=encoder.model, tokenizer=encoder.tokenizer,
                        identity=encoder.identity, precision="float32")  # fmt: skip
    threads = torch.get_num_threads()

    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry")
        examples = [Example(r["text"], (r["label"],), i) for i, r in enumerate(train)]
        head = fit_head(encoder, spec, examples)
        publish_head(registry, "1", spec, encoder, head, examples)
        batches = [texts[i : i + args.batch_size] for i in range(0, n, args.batch_size)]

        def raw() -> None:
            for batch in batches:
                head.proba(encoder.embed(batch))

        naive_texts = texts[:: max(1, n // args.naive_tasks)][: args.naive_tasks]  # same length mix as the rest

        def naive() -> None:
            for text in naive_texts:
                head.proba(plain.embed([text], batch_size=1))

        def naive_same_precision() -> None:
            for text in naive_texts:
                head.proba(encoder.embed([text], batch_size=1))

        raw()  # warm-up
        raw_s = median_time(raw, args.rounds)
        naive_s = median_time(naive, args.rounds)
        naive_same_s = median_time(naive_same_precision, args.rounds)

        env = {
            "HITL_REGISTRY_DIR": str(registry.root),
            "HITL_MODEL_NAME": model_name,
            "HITL_BATCH_SIZE": str(settings.batch_size),
            "HITL_PRECISION": settings.precision,
            "HITL_TORCH_THREADS": str(threads),
            "HITL_LOG_LEVEL": "WARNING",
            "HITL_DATA_DIR": tmp,
        }
        with backend_server(env, free_port()) as url, requests.Session() as session:
            bodies = [
                {
                    "tasks": [{"id": i, "data": {"text": t}} for i, t in enumerate(batch)],
                    "project": "1.1764000000",
                    "label_config": AG_CONFIG,
                    "params": {"login": None, "password": None, "context": None},
                }
                for batch in batches
            ]

            def http() -> None:
                for body in bodies:
                    response = session.post(url + "/predict", json=body, timeout=120)
                    response.raise_for_status()
                    assert len(response.json()["results"]) == len(body["tasks"])

            http()  # warm-up
            http_s = median_time(http, args.rounds)

    raw_tps = n / raw_s
    naive_tps = len(naive_texts) / naive_s
    http_tps = n / http_s
    print(f"texts: {n} AG News test texts, {args.batch_size} per request; forward batches of {settings.batch_size}, "
          f"precision {encoder.precision}; torch threads: {threads}; rounds: {args.rounds} (medians)")  # fmt: skip
    print(f"raw forward pass, same batches and precision (in process): {raw_tps:8.1f} tasks/s")
    print(f"naive loop, one float32 pass per task:                     {naive_tps:8.1f} tasks/s")
    print(f"  (one pass per task at {encoder.precision}:                        "
          f"{len(naive_texts) / naive_same_s:8.1f} tasks/s)")  # fmt: skip
    print(f"/predict over HTTP (gunicorn), {args.batch_size} tasks per request:          {http_tps:8.1f} tasks/s")
    print(f"ratio_vs_raw={http_tps / raw_tps:.3f} ratio_vs_naive={http_tps / naive_tps:.3f}")
    return 0
