"""``hitl bench finetune``: what a fine-tune buys over the head, on the same labels, with the
product's own code (``learning.candidates.fit_candidate``: the head path and the ``full`` path,
the held-out split by task id) and its defaults. Medians over seeds; the last line holds the
fine-tune's seconds and its test-accuracy gain over the head. ``--warm-start`` also fine-tunes
from the encoder of a fine-tune on the first half of the same labels (what the project's previous
fine-tune left) and prints its validation gain over the fine-tune from the base.
``--contrastive PAIRS`` tries a SetFit-style contrastive stage first (``contrastive.py``): the
head on its encoder (SetFit) and the product's fine-tune from it, each against the product's
fine-tune, on the validation split."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from backend.ids import JobKind
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_candidate
from backend.learning.dataset import split
from backend.learning.gate import score
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.bench.contrastive import contrastive_stage
from backend.tools.simulate import choices_config, load_split


def bench_finetune(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    (train, train_labels), (test, test_labels) = load_split(folder, "train", None), load_split(folder, "test", None)
    spec = parse_label_config(choices_config(sorted(set(train_labels))))
    pool = [Example(text, (label,), i) for i, (text, label) in enumerate(zip(train, train_labels, strict=True))]
    test_examples = [Example(t, (lab,)) for t, lab in zip(test, test_labels, strict=True) if lab in spec.labels]
    min_steps = settings.finetune_min_steps if args.min_steps is None else args.min_steps
    settings = settings.model_copy(
        update={
            "finetune_epochs": args.epochs or settings.finetune_epochs,
            "finetune_lr": args.lr or settings.finetune_lr,
            "finetune_min_steps": min_steps,
        }
    )
    # Recipes are chosen on a validation split carved from train (never on the test set).
    rest = np.random.default_rng(10_000).permutation(len(pool))
    validation = [pool[i] for i in rest[: args.validation]]
    outside = {ex.task_id for ex in validation}
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    rows: dict[str, list[float]] = {
        "head": [],
        "full": [],
        "seconds": [],
        "val_head": [],
        "val_full": [],
        "val_warm": [],
        "warm": [],
        "setfit": [],
        "val_setfit": [],
        "cft": [],
        "val_cft": [],
        "contrastive_s": [],
    }
    print(
        f"{args.dataset}: {args.labels} random labels of {len(pool) - len(validation)}, validation "
        f"{len(validation)}, test {len(test_examples)}, {settings.finetune_epochs} epochs (at least "
        f"{settings.finetune_min_steps} steps), "
        f"lr {settings.finetune_lr:g}, seeds {args.seeds}"
    )
    for seed in range(args.seeds):
        candidates = [i for i in np.random.default_rng(seed).permutation(len(pool)) if i not in outside]
        chosen = [pool[i] for i in candidates[: args.labels]]
        train_part, held = split(chosen, settings.holdout_fraction)
        head = fit_candidate(spec, JobKind.HEAD, train_part, held, cache, settings)
        started = time.perf_counter()
        full = fit_candidate(spec, JobKind.FULL, train_part, held, cache, settings)
        seconds = time.perf_counter() - started
        acc_head = score(head.model, test_examples, spec, cache=cache)["accuracy"]
        acc_full = score(full.model, test_examples, spec)["accuracy"]
        val_head = score(head.model, validation, spec, cache=cache)["accuracy"] if validation else float("nan")
        val_full = score(full.model, validation, spec)["accuracy"] if validation else float("nan")
        for key, value in (
            ("head", acc_head),
            ("full", acc_full),
            ("seconds", seconds),
            ("val_head", val_head),
            ("val_full", val_full),
        ):
            rows[key].append(value)
        print(
            f"seed {seed}: head {acc_head:.4f}  fine-tuned {acc_full:.4f}  ({seconds:.1f}s, "
            f"{len(train_part)} train + {len(held)} held out); validation: head {val_head:.4f} "
            f"fine-tuned {val_full:.4f}"
        )
        if args.warm_start:  # the previous fine-tune: on the first half of these labels, split the same way
            earlier = chosen[: len(chosen) // 2]
            earlier_train, earlier_held = split(earlier, settings.holdout_fraction)
            previous = fit_candidate(spec, JobKind.FULL, earlier_train, earlier_held, cache, settings).model.encoder
            warm = fit_candidate(spec, JobKind.FULL, train_part, held, EmbeddingCache(cache.folder, previous), settings)
            rows["warm"].append(score(warm.model, test_examples, spec)["accuracy"])
            rows["val_warm"].append(score(warm.model, validation, spec)["accuracy"])
            print(
                f"  warm start from a fine-tune on {len(earlier)} of them: test {rows['warm'][-1]:.4f}, "
                f"validation {rows['val_warm'][-1]:.4f}"
            )
        if args.contrastive:
            started = time.perf_counter()
            tuned = EmbeddingCache(cache.folder, contrastive_stage(cache.encoder, train_part, args.contrastive))
            rows["contrastive_s"].append(time.perf_counter() - started)
            setfit = fit_candidate(spec, JobKind.HEAD, train_part, held, tuned, settings).model
            both = fit_candidate(spec, JobKind.FULL, train_part, held, tuned, settings).model
            for key, model in (("setfit", setfit), ("cft", both)):
                rows[key].append(score(model, test_examples, spec)["accuracy"])
                rows[f"val_{key}"].append(score(model, validation, spec)["accuracy"])
            print(
                f"  contrastive stage ({args.contrastive} pairs, {rows['contrastive_s'][-1]:.1f}s), then the head: "
                f"test {rows['setfit'][-1]:.4f}, validation {rows['val_setfit'][-1]:.4f}; then the fine-tune: "
                f"test {rows['cft'][-1]:.4f}, validation {rows['val_cft'][-1]:.4f}"
            )
    med = {key: statistics.median(values) for key, values in rows.items() if values}
    gain = statistics.median(f - h for f, h in zip(rows["full"], rows["head"], strict=True))
    print(
        f"median: test head {med['head']:.4f}, fine-tuned {med['full']:.4f}; validation head "
        f"{med['val_head']:.4f}, fine-tuned {med['val_full']:.4f}"
    )
    print(f"finetune_{args.labels}_s={med['seconds']:.1f} accuracy_gain_{args.labels}={gain:.4f}")
    if args.warm_start:
        warm_gain = statistics.median(w - f for w, f in zip(rows["val_warm"], rows["val_full"], strict=True))
        print(
            f"warm start: test {med['warm']:.4f}, validation {med['val_warm']:.4f} (from the base: "
            f"{med['full']:.4f}, {med['val_full']:.4f})"
        )
        print(f"warm_start_validation_gain={warm_gain:.4f}")
    if args.contrastive:
        gains = {
            key: statistics.median(c - f for c, f in zip(rows[f"val_{key}"], rows["val_full"], strict=True))
            for key in ("setfit", "cft")
        }
        print(
            f"contrastive ({med['contrastive_s']:.1f}s): then the head: test {med['setfit']:.4f}, validation "
            f"{med['val_setfit']:.4f}; then the fine-tune: test {med['cft']:.4f}, validation {med['val_cft']:.4f} "
            f"(the product's fine-tune: {med['full']:.4f}, {med['val_full']:.4f})"
        )
        print(f"setfit_validation_gain={gains['setfit']:.4f} contrastive_finetune_validation_gain={gains['cft']:.4f}")
    return 0
