"""``hitl bench precision``: float32, bfloat16 (where the CPU has it) and int8 side by side, each
with the product's head (penalty chosen on the held-out side, temperature fitted there) trained
on that precision's embeddings: texts/s, test accuracy, calibrated test ECE, top-1 agreement
with float32, and how much the queue order moves (Spearman correlation of margin scores on a pool
sample). The last line holds int8's speed-up and agreement per dataset."""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from backend.learning.calibration import expected_calibration_error, fit_temperature, softmax
from backend.learning.head_selection import fit_selected_head
from backend.models import uncertainty
from backend.models.encoder import TextEncoder, cpu_has_bf16, encoder_from_settings
from backend.serving.routing import is_heldout
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.simulate import load_split


def variants(base: TextEncoder) -> dict[str, TextEncoder]:
    float_base = base.float_weights
    out = {
        "float32": TextEncoder(
            float_base.name_or_path,
            float_base.max_length,
            float_base.batch_size,
            model=float_base.model,
            tokenizer=float_base.tokenizer,
            identity=float_base.identity,
            precision="float32",
        )
    }
    if cpu_has_bf16():
        out["bfloat16"] = TextEncoder(
            float_base.name_or_path,
            float_base.max_length,
            float_base.batch_size,
            model=float_base.model,
            tokenizer=float_base.tokenizer,
            identity=float_base.identity,
            precision="bfloat16",
        )
    out["int8"] = float_base.quantized()
    return out


def bench_precision(args: argparse.Namespace, settings: Settings) -> int:
    encoders = variants(encoder_from_settings(settings))
    last = []
    for given in args.datasets.split(","):
        folder = dataset_dir(args.data, given)
        dataset = folder.name
        (train, train_labels), (test, test_labels) = (
            load_split(folder, "train", None),
            load_split(folder, "test", args.test_size),
        )
        names = sorted(set(train_labels))
        index = {name: i for i, name in enumerate(names)}
        order = np.random.default_rng(0).permutation(len(train))
        labeled, pool = order[: args.labels], order[args.labels : args.labels + args.pool]
        held = np.array([is_heldout(int(i), settings.holdout_fraction) for i in labeled])
        y = np.array([index[train_labels[i]] for i in labeled])
        y_test = np.array([index.get(label, -1) for label in test_labels])
        texts = [train[i] for i in labeled] + [train[i] for i in pool] + list(test)
        print(
            f"{dataset}: {args.labels} labels ({int(held.sum())} held out), pool sample {len(pool)}, test {len(test)}"
        )
        results = {}
        for name, encoder in encoders.items():
            started = time.perf_counter()
            x = encoder.embed(texts)
            speed = len(texts) / (time.perf_counter() - started)
            x_lab, x_pool, x_test = x[: len(labeled)], x[len(labeled) : len(labeled) + len(pool)], x[-len(test) :]
            head = fit_selected_head(x_lab[~held], y[~held], x_lab[held], y[held], len(names), False).head
            t = fit_temperature(head.logits(x_lab[held]), y[held])
            probs = softmax(head.logits(x_test), t)
            pred = probs.argmax(axis=1)
            results[name] = {
                "speed": speed,
                "pred": pred,
                "accuracy": float((pred == y_test).mean()),
                "ece": expected_calibration_error(probs, y_test),
                "queue": uncertainty.margin(softmax(head.logits(x_pool), t)),
            }
        reference = results["float32"]
        for name, r in results.items():
            agreement = float((r["pred"] == reference["pred"]).mean())
            rho = float(spearmanr(r["queue"], reference["queue"]).statistic)
            print(
                f"  {name:>8}: {r['speed']:7.1f} texts/s ({r['speed'] / reference['speed']:.2f}x float32); "
                f"accuracy {r['accuracy']:.4f}; calibrated ECE {r['ece']:.4f}; top-1 agreement with float32 "
                f"{agreement:.4f}; queue order Spearman {rho:.4f}; 100k re-embedded in "
                f"{100_000 / r['speed'] / 60:.1f} min"
            )
            if name == "int8":
                last += [
                    f"int8_speedup_{dataset}={r['speed'] / reference['speed']:.2f}",
                    f"int8_agreement_{dataset}={agreement:.4f}",
                    f"int8_accuracy_delta_{dataset}={r['accuracy'] - reference['accuracy']:+.4f}",
                ]
    print(" ".join(last))
    return 0
