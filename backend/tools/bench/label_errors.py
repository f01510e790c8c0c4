"""``hitl bench label-errors``: flip a share of a labeled sample (uniformly, or class-conditionally
to one other class with ``--noise-kind pair``), run the product's detector on it
(``monitoring.label_errors``: cross-validated heads on the cached embeddings, then cleanlab), and
measure how well it finds the flips. k = the number of flipped labels; precision_at_k = flips
among the k most suspicious / k (recall_at_k is the same count over the flips: equal at this k);
auc = ROC AUC of suspicion against flipped; the tasks flagged are reported too.

``--chosen-by margin`` draws the annotated tasks as the product's queue would: 50 at random, then
25 at a time in margin order under a head refitted on those so far. Those are the hard tasks, on
which the detector's cross-validated heads are weak; with ``--noise 0`` (every label right) the
last line is the share of right labels flagged.

With ``--fine-tuned`` the detector runs on a fine-tuned encoder's features instead: the encoder is
first fine-tuned on the (noisy) annotations by the product's own ``full`` path, then the
cross-validated heads are fitted on its embeddings. (The product checks on the base encoder: see the
README for why.)"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.metrics import roc_auc_score

from backend.ids import JobKind
from backend.labeling import TaskSpec, parse_label_config
from backend.labeling.examples import Example, targets
from backend.learning.candidates import fit_candidate
from backend.learning.dataset import split
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.models.head import LinearHead
from backend.monitoring.label_errors import find_suspects, out_of_sample_probs, ranking
from backend.query.strategies import make_strategy, rank
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
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


def cleanlab_alone(spec: TaskSpec, examples: list[Example], x: np.ndarray) -> set[int]:
    """Rows cleanlab flags on the same out-of-sample probabilities, without the calibrated bound."""
    y = targets(examples, spec)
    present = np.unique(y)
    y_local = np.searchsorted(present, y)
    return {
        int(i)
        for i in np.flatnonzero(find_label_issues(y_local, out_of_sample_probs(x, y_local, len(present)), n_jobs=1))
    }


def chosen_by_margin(
    x: np.ndarray, gold: np.ndarray, labels: int, rng: np.random.Generator, first: int = 50, step: int = 25
) -> np.ndarray:
    """Indices of ``labels`` rows picked as the queue would: ``first`` at random, then ``step`` at a time
    in margin order under a head refitted on the rows picked so far."""
    picked = [int(i) for i in rng.permutation(len(x))[:first]]
    margin, ids = make_strategy("margin"), np.arange(len(x))
    while len(picked) < labels:
        head = LinearHead.fit(x[picked], gold[picked], int(gold.max()) + 1, multi_label=False)
        taken = set(picked)
        order = [int(i) for i in rank(margin, head.proba(x), x, ids) if int(i) not in taken]
        picked += order[: min(step, labels - len(picked))]
    return np.array(picked)


def bench_label_errors(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset)
    texts, gold = load_split(folder, "train", None)
    names = sorted(set(gold))
    spec = parse_label_config(choices_config(names))
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    rows: dict[str, list[float]] = {
        "precision_at_k": [],
        "auc": [],
        "flag_precision": [],
        "flag_recall": [],
        "flagged_share": [],
        "alone_share": [],
        "alone_precision": [],
        "alone_recall": [],
    }
    features = "a fine-tuned encoder" if args.fine_tuned else "the base encoder"
    print(
        f"{args.dataset}: {args.labels} annotations chosen by {args.chosen_by}, {args.noise:.0%} flipped "
        f"({args.noise_kind}), seeds {args.seeds}, heads on {features}"
    )
    if args.chosen_by == "margin":
        texts, gold = texts[: args.pool], gold[: args.pool]
        pool_x = embed_all(cache, texts, f"{args.dataset} pool")
        gold_index = np.array([names.index(g) for g in gold])
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        if args.chosen_by == "margin":
            sample = chosen_by_margin(pool_x, gold_index, args.labels, rng)
        else:
            sample = rng.permutation(len(texts))[: args.labels]
        labels = [gold[i] for i in sample]
        flipped = flip(labels, names, args.noise, args.noise_kind, rng)
        examples = [Example(texts[i], (label,), int(i)) for i, label in zip(sample, labels, strict=True)]
        features = cache
        if args.fine_tuned:  # as the product would serve: fine-tuned on these (noisy) annotations
            train, held = split(examples, settings.holdout_fraction)
            features = EmbeddingCache(
                cache.folder, fit_candidate(spec, JobKind.FULL, train, held, cache, settings).model.encoder
            )
        x = embed_all(features, [ex.text for ex in examples], f"{args.dataset} sample", progress=False)
        truth = np.zeros(len(examples), dtype=bool)
        truth[flipped] = True
        flagged = {s.task_id for s in find_suspects(spec, examples, x, max_given_prob=args.max_prob)}
        rows["flagged_share"].append(len(flagged) / len(examples))
        alone = cleanlab_alone(spec, examples, x)  # the baseline: without the product's calibrated bound
        rows["alone_share"].append(len(alone) / len(examples))
        k = len(flipped)
        if k == 0:
            print(
                f"seed {seed}: every label right; {len(flagged)} flagged ({len(flagged) / len(examples):.1%}); "
                f"cleanlab alone {len(alone)}"
            )
            continue
        quality = ranking(spec, examples, x)
        hits = int(truth[np.argsort(quality, kind="stable")[:k]].sum())
        found = sum(1 for i in flipped if int(sample[i]) in flagged)
        rows["precision_at_k"].append(hits / k)
        rows["auc"].append(float(roc_auc_score(truth, -quality)))
        rows["flag_precision"].append(found / max(len(flagged), 1))
        rows["flag_recall"].append(found / k)
        rows["alone_precision"].append(len(alone & set(flipped)) / max(len(alone), 1))
        rows["alone_recall"].append(len(alone & set(flipped)) / k)
        print(
            f"seed {seed}: k={k}: {hits} flips among the {k} most suspicious; AUC {rows['auc'][-1]:.4f}; "
            f"flagged {len(flagged)} tasks, {found} of them flips"
        )
    med = {key: statistics.median(values) for key, values in rows.items() if values}
    print(
        f"cleanlab alone (the baseline): flags {med['alone_share']:.1%} of the annotations"
        + (f", precision {med['alone_precision']:.4f}, recall {med['alone_recall']:.4f}" if args.noise else "")
    )
    if args.noise == 0:
        ratio = med["flagged_share"] / max(med["alone_share"], 1e-9)
        print(f"flagged_share={med['flagged_share']:.4f} vs_cleanlab_alone={ratio:.3f}")
        return 0
    print(
        f"flagged set: {med['flagged_share']:.1%} of the annotations, precision {med['flag_precision']:.4f}, "
        f"recall {med['flag_recall']:.4f}"
    )
    print(f"precision_at_k={med['precision_at_k']:.4f} recall_at_k={med['precision_at_k']:.4f} auc={med['auc']:.4f}")
    return 0
