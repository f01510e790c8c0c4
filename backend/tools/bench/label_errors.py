"""``hitl bench label-errors``: flip a share of a labeled sample (uniformly, or class-conditionally
to one other class with ``--noise-kind pair``), run the product's detector on it
(``learning.label_errors``: cross-validated heads on the cached embeddings, then cleanlab), and
measure how well it finds the flips. k = the number of flipped labels; precision_at_k = flips
among the k most suspicious / k (recall_at_k is the same count over the flips: equal at this k);
auc = ROC AUC of suspicion against flipped; the tasks cleanlab flags are reported too.

With ``--fine-tuned`` the detector runs on a fine-tuned encoder's features instead: the encoder is
first fine-tuned on the (noisy) annotations by the product's own ``full`` path, then the
cross-validated heads are fitted on its embeddings. (The product checks on the base encoder: see the
README for why.)"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from sklearn.metrics import roc_auc_score

from backend.ids import JobKind
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_candidate
from backend.learning.dataset import split
from backend.learning.label_errors import find_suspects, ranking
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.settings import Settings
from backend.tools.bench.common import data_dir
from backend.tools.simulate import choices_config, embed_all, load_split


def flip(labels: list[str], names: list[str], share: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Indices flipped; ``labels`` is changed in place."""
    chosen = rng.choice(len(labels), size=round(share * len(labels)), replace=False)
    for i in chosen:
        current = names.index(labels[i])
        if kind == "pair":
            labels[i] = names[(current + 1) % len(names)]
        else:
            labels[i] = names[int(rng.choice([j for j in range(len(names)) if j != current]))]
    return np.sort(chosen)


def bench_label_errors(args: argparse.Namespace, settings: Settings) -> int:
    folder = data_dir(args.data) / args.dataset
    texts, gold = load_split(folder, "train", None)
    names = sorted(set(gold))
    spec = parse_label_config(choices_config(names))
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    rows: dict[str, list[float]] = {"precision_at_k": [], "auc": [], "flag_precision": [], "flag_recall": []}
    features = "a fine-tuned encoder" if args.fine_tuned else "the base encoder"
    print(f"{args.dataset}: {args.labels} annotations, {args.noise:.0%} flipped ({args.noise_kind}), "
          f"seeds {args.seeds}, heads on {features}")  # fmt: skip
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        sample = rng.permutation(len(texts))[: args.labels]
        labels = [gold[i] for i in sample]
        flipped = flip(labels, names, args.noise, args.noise_kind, rng)
        examples = [Example(texts[i], (label,), int(i)) for i, label in zip(sample, labels, strict=True)]
        features = cache
        if args.fine_tuned:  # as the product would serve: fine-tuned on these (noisy) annotations
            train, held = split(examples, settings.holdout_fraction)
            features = EmbeddingCache(cache.folder, fit_candidate(spec, JobKind.FULL, train, held, cache,
                                                                  settings).model.encoder)  # fmt: skip
        x = embed_all(features, [ex.text for ex in examples], f"{args.dataset} sample", progress=False)
        truth = np.zeros(len(examples), dtype=bool)
        truth[flipped] = True
        quality = ranking(spec, examples, x)
        k = len(flipped)
        hits = int(truth[np.argsort(quality, kind="stable")[:k]].sum())
        flagged = {s.task_id for s in find_suspects(spec, examples, x)}
        found = sum(1 for i in flipped if int(sample[i]) in flagged)
        rows["precision_at_k"].append(hits / k)
        rows["auc"].append(float(roc_auc_score(truth, -quality)))
        rows["flag_precision"].append(found / max(len(flagged), 1))
        rows["flag_recall"].append(found / k)
        print(f"seed {seed}: k={k}: {hits} flips among the {k} most suspicious; AUC {rows['auc'][-1]:.4f}; "
              f"cleanlab flagged {len(flagged)} tasks, {found} of them flips")  # fmt: skip
    med = {key: statistics.median(values) for key, values in rows.items()}
    print(f"flagged set: precision {med['flag_precision']:.4f}, recall {med['flag_recall']:.4f}")
    print(f"precision_at_k={med['precision_at_k']:.4f} recall_at_k={med['precision_at_k']:.4f} auc={med['auc']:.4f}")
    return 0
