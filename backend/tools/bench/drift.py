"""``hitl bench drift``: the product's drift detector (``monitoring.drift``) on streams of windows.

A head is fitted and temperature-scaled on ``--labels`` random annotations of ``--dataset`` (the
product's head path); the reference is a random sample of the rest of that dataset's pool, scored
by that model. Then, per seed:

- **shifted streams**: windows of ``--window`` tasks where ``--mix`` of each window comes from
  ``--shift-dataset`` (another dataset's texts mixed in), and windows where one class is
  over-represented (``prior``: half of each window from one class); delay = windows until the
  first alarm;
- **a stream without shift**: ``--null-windows`` windows drawn from the same pool as the
  reference; false alarms per 1,000 windows.

The last line holds the medians over seeds of the mixture shift's delay and the false-alarm rate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from tqdm import tqdm

from backend.labeling import parse_label_config
from backend.labeling.examples import Example, targets
from backend.learning.candidates import calibrate_head, fit_head
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.monitoring.drift import DriftDetector
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir
from backend.tools.simulate import choices_config, embed_all, load_split


def bench_drift(args: argparse.Namespace, settings: Settings) -> int:
    texts, gold = load_split(dataset_dir(args.data, args.dataset), "train", args.pool)
    other, _ = load_split(dataset_dir(args.data, args.shift_dataset), "train", args.pool // 2)
    names = sorted(set(gold))
    spec = parse_label_config(choices_config(names))
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    x = embed_all(cache, texts, args.dataset)
    x_other = embed_all(cache, other, args.shift_dataset)
    y = np.array([names.index(g) for g in gold])
    print(
        f"{args.dataset} pool {len(texts)}, {args.shift_dataset} {len(other)} texts; windows of {args.window}, "
        f"{args.mix:.0%} mixed in; {args.labels} labels; seeds {args.seeds}"
    )
    delays: dict[str, list[int]] = {"mixture": [], "prior": []}
    false_alarms, seconds = [], []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(texts))
        labeled, reference, rest = np.split(order, [args.labels, args.labels + 500])
        examples = [Example(texts[i], (gold[i],), int(i)) for i in labeled]
        head = fit_head(cache.encoder, spec, examples, x[labeled])
        calibrate_head(head, spec, x[labeled], targets(examples, spec), None, [], settings)
        probs, probs_other = head.proba(x), head.proba(x_other)
        detector = DriftDetector(probs[reference], x[reference], alpha=args.alpha or settings.drift_alpha, seed=seed)

        def window(from_pool: np.ndarray, shifted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
            return _window((probs, x), (probs_other, x_other), from_pool, shifted)  # noqa: B023

        for kind in delays:
            delay = args.max_windows + 1  # not detected within the stream
            for w in range(args.max_windows):
                if kind == "mixture":
                    n_other = round(args.mix * args.window)
                    p, e = window(_pick(rng, rest, args.window - n_other), _pick(rng, np.arange(len(other)), n_other))
                else:  # half of the window from one class, the other half from the whole pool
                    favoured = _pick(rng, rest[y[rest] == seed % len(names)], args.window // 2)
                    p, e = window(
                        np.concatenate(
                            [favoured, _pick(rng, np.setdiff1d(rest, favoured), args.window - len(favoured))]
                        )
                    )
                if detector.test(p, e).alarm:
                    delay = w + 1
                    break
            delays[kind].append(delay)
        started, alarms = time.perf_counter(), 0
        for _ in tqdm(range(args.null_windows), desc=f"seed {seed}: windows without shift", leave=False):
            alarms += detector.test(*window(_pick(rng, rest, args.window))).alarm
        seconds.append((time.perf_counter() - started) / args.null_windows)
        false_alarms.append(1000 * alarms / args.null_windows)
        print(
            f"seed {seed}: mixture shift found after {delays['mixture'][-1]} window(s), class-prior shift after "
            f"{delays['prior'][-1]}; {alarms} false alarms in {args.null_windows} windows without shift"
        )
    print(f"per window: {statistics.median(seconds) * 1000:.0f} ms (both tests, {args.window} tasks vs 500)")
    print(f"class-prior shift: median delay {statistics.median(delays['prior'])} windows")
    print(
        f"detect_delay_windows={statistics.median(delays['mixture'])} "
        f"false_alarms_per_1000_windows={statistics.median(false_alarms):.1f}"
    )
    return 0


def _window(
    pool: tuple[np.ndarray, np.ndarray],
    other: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    other_rows: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, embeddings) of a window: pool rows, plus rows of the other dataset."""
    p, e = pool[0][rows], pool[1][rows]
    if other_rows is not None:
        p, e = np.vstack([p, other[0][other_rows]]), np.vstack([e, other[1][other_rows]])
    return p, e


def _pick(rng: np.random.Generator, rows: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct rows: a window never holds a task twice (duplicates would look like drift)."""
    return rng.choice(rows, k, replace=False)
