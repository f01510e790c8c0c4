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
from backend.models.encoder import TextEncoder, encoder_from_settings, int8_allowed
from backend.settings import Settings
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, dataset_dir, free_port, median_time, read_jsonl

AG_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="topic" toName="text">'
    '<Choice value="World"/><Choice value="Sports"/><Choice value="Business"/><Choice value="Sci/Tech"/>'
    "</Choices></View>"
)


def bench_predict(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    train = read_jsonl(folder / "train.jsonl", 300)
    n = args.batches * args.batch_size
    texts = [r["text"] for r in read_jsonl(folder / "test.jsonl", n)]
    spec = parse_label_config(AG_CONFIG)
    encoder = encoder_from_settings(settings)
    model_name = encoder.name_or_path
    # The naive baseline: what a straightforward backend does, one float32 forward pass per task.
    plain = TextEncoder(
        model_name,
        settings.max_length,
        1,
        model=encoder.model,
        tokenizer=encoder.tokenizer,
        identity=encoder.identity,
        precision="float32",
    )
    threads = torch.get_num_threads()
    # Two versions, as the retrain publishes them: project 1 serves float, project 2 int8 (its head
    # fitted on the int8 embeddings); the last line is at the precision the settings serve.
    served = {"float": encoder, "int8": encoder.quantized()} if int8_allowed(settings.precision) else {"float": encoder}
    serving = "int8" if "int8" in served else "float"

    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry")
        examples = [Example(r["text"], (r["label"],), i) for i, r in enumerate(train)]
        heads = {}
        for project, (name, enc) in enumerate(served.items(), start=1):
            heads[name] = fit_head(enc, spec, examples)
            publish_head(registry, project, spec, enc, heads[name], examples)
        batches = [texts[i : i + args.batch_size] for i in range(0, n, args.batch_size)]

        def raw(name: str) -> None:
            for batch in batches:
                heads[name].proba(served[name].embed(batch))

        naive_texts = texts[:: max(1, n // args.naive_tasks)][: args.naive_tasks]  # same length mix as the rest

        def naive() -> None:
            for text in naive_texts:
                heads["float"].proba(plain.embed([text], batch_size=1))

        raw_s = {}
        for name in served:
            raw(name)  # warm-up
            raw_s[name] = median_time(lambda name=name: raw(name), args.rounds)
        naive_s = median_time(naive, args.rounds)

        env = {
            "HITL_REGISTRY_DIR": str(registry.root),
            "HITL_MODEL_NAME": model_name,
            "HITL_BATCH_SIZE": str(settings.batch_size),
            "HITL_PRECISION": settings.precision,
            "HITL_TORCH_THREADS": str(threads),
            "HITL_LOG_LEVEL": "WARNING",
            "HITL_DATA_DIR": tmp,
        }
        http_s = {}
        with backend_server(env, free_port()) as url, requests.Session() as session:
            for project, name in enumerate(served, start=1):
                bodies = [
                    {
                        "tasks": [{"id": i, "data": {"text": t}} for i, t in enumerate(batch)],
                        "project": f"{project}.1764000000",
                        "label_config": AG_CONFIG,
                        "params": {"login": None, "password": None, "context": None},
                    }
                    for batch in batches
                ]

                def http(bodies: list = bodies) -> None:
                    for body in bodies:
                        response = session.post(url + "/predict", json=body, timeout=120)
                        response.raise_for_status()
                        assert len(response.json()["results"]) == len(body["tasks"])

                http()  # warm-up
                http_s[name] = median_time(http, args.rounds)

    naive_tps = len(naive_texts) / naive_s
    print(
        f"texts: {n} AG News test texts, {args.batch_size} per request; forward batches of {settings.batch_size}, "
        f"float at {encoder.precision}; torch threads: {threads}; rounds: {args.rounds} (medians)"
    )
    print(f"naive loop, one float32 pass per task:                     {naive_tps:8.1f} tasks/s")
    for name in served:
        label = encoder.precision if name == "float" else "int8"
        print(
            f"{label:>8}: raw forward pass (same batches, in process) {n / raw_s[name]:8.1f} tasks/s; "
            f"/predict over HTTP (gunicorn) {n / http_s[name]:8.1f} tasks/s"
        )
    raw_tps, http_tps = n / raw_s[serving], n / http_s[serving]
    print(f"serving precision: {serving if serving == 'int8' else encoder.precision}")
    print(f"ratio_vs_raw={http_tps / raw_tps:.3f} ratio_vs_naive={http_tps / naive_tps:.3f}")
    return 0
