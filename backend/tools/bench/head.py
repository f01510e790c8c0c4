"""``hitl bench head``: the head's L2 penalty chosen on held-out annotations vs the fixed default.

For each project size, random annotations from the pool are split as the product splits them
(``dataset.split``: 15 % held out by task id); a head with the default penalty and the head
``head_selection`` picks are fitted on the rest and scored on the test set: accuracy, and ECE
after a temperature fitted on the held-out side (as served). Medians over seeds; the last line
holds the accuracy ratios (chosen / default) per size.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from backend.learning.calibration import expected_calibration_error, fit_temperature, softmax
from backend.learning.head_selection import fit_selected_head
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.models.head import DEFAULT_L2, LinearHead
from backend.serving.routing import is_heldout
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.simulate import embed_all, load_split


def _score(head: LinearHead, x_held: np.ndarray, y_held: np.ndarray, x_test: np.ndarray, y_test: np.ndarray):  # type: ignore[no-untyped-def]
    t = fit_temperature(head.logits(x_held), y_held)
    logits = head.logits(x_test)
    return float((logits.argmax(axis=1) == y_test).mean()), expected_calibration_error(softmax(logits, t), y_test)


def bench_head(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    (train, train_labels), (test, test_labels) = load_split(folder, "train", None), load_split(folder, "test", None)
    names = sorted(set(train_labels))
    index = {name: i for i, name in enumerate(names)}
    encoder = encoder_from_settings(settings)
    cache = EmbeddingCache(settings.data_dir / "cache", encoder)
    x_pool, x_test = embed_all(cache, train, f"{args.dataset} pool"), embed_all(cache, test, "test")
    y_pool = np.array([index[label] for label in train_labels])
    y_test = np.array([index.get(label, -1) for label in test_labels])
    held_bucket = np.array([is_heldout(i, settings.holdout_fraction) for i in range(len(train))])
    sizes = [len(train) if s == "all" else min(int(s), len(train)) for s in args.sizes.split(",")]
    ratios = []
    print(f"{args.dataset}: pool {len(train)}, test {len(test)}, default l2 {DEFAULT_L2:g}, seeds {args.seeds}")
    for size in sizes:
        rows: dict[str, list[float]] = {
            "acc_default": [],
            "acc_chosen": [],
            "ece_default": [],
            "ece_chosen": [],
            "l2": [],
        }
        for seed in range(args.seeds):
            chosen = np.random.default_rng(seed).permutation(len(train))[:size]
            tr, ho = chosen[~held_bucket[chosen]], chosen[held_bucket[chosen]]
            default = LinearHead.fit(x_pool[tr], y_pool[tr], len(names), multi_label=False)
            choice = fit_selected_head(x_pool[tr], y_pool[tr], x_pool[ho], y_pool[ho], len(names), multi_label=False)
            for name, head in (("default", default), ("chosen", choice.head)):
                acc, ece = _score(head, x_pool[ho], y_pool[ho], x_test, y_test)
                rows[f"acc_{name}"].append(acc)
                rows[f"ece_{name}"].append(ece)
            rows["l2"].append(choice.l2)
        med = {key: statistics.median(values) for key, values in rows.items()}
        ratios.append(f"ratio_at_{size}={med['acc_chosen'] / med['acc_default']:.3f}")
        print(
            f"{size:>6} labels: accuracy default {med['acc_default']:.4f} chosen {med['acc_chosen']:.4f} "
            f"(l2 {', '.join(f'{v:g}' for v in rows['l2'])}); calibrated ECE default {med['ece_default']:.4f} "
            f"chosen {med['ece_chosen']:.4f}"
        )
    print(" ".join(ratios))
    return 0
