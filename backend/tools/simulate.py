"""Active-learning replay on a labeled dataset: does the loop save labels, and how well calibrated is it?

A simulated annotator answers from the gold labels. Everything else is the product's code: the
encoder and its embedding cache, the linear head with its L2 strength chosen on the held-out
annotations (``head_selection``), the held-out split of
``dataset.split``, the query strategies and the diverse top of the queue (``strategies``), and
temperature scaling (``calibration``). So a curve here is what a project would see.
"""

from __future__ import annotations

import csv
import html
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score
from tqdm import tqdm

from backend.jobs.scheduled import finetune_grown
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.calibration import (
    coverage_at,
    cross_fit_temperature,
    expected_calibration_error,
    fit_temperature,
    routing_threshold,
    softmax,
)
from backend.learning.candidates import tune_encoder
from backend.learning.dataset import split
from backend.learning.head_selection import fit_selected_head
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder
from backend.models.plugin_model import PluginClassifier, fit_plugin
from backend.monitoring.stopping import STOP_SET, THRESHOLD, WINDOW, StoppingStatus, estimate_gain
from backend.query.clusters import assign, default_k, kmeans
from backend.query.strategies import ColdStartStrategy, diversify_top, make_strategy
from backend.serving.routing import is_heldout
from backend.settings import Settings
from backend.tools.simulate_options import SIM_STRATEGIES

COLUMNS = [
    "strategy",
    "seed",
    "labels",
    "served",
    "accuracy",
    "macro_f1",
    "ece",
    "ece_calibrated",
    "ece_pool_calibrated",
    "temperature",
    "l2",
    "heldout_accuracy",
    "stop_kappa",
    "stop_uncertainty",
    "stop",
]


def choices_config(labels: list[str]) -> str:
    """A single-choice labeling config over ``$text`` with ``labels`` (the replays' and benches')."""
    choices = "".join(f'<Choice value="{html.escape(label, quote=True)}"/>' for label in labels)
    return f'<View><Text name="text" value="$text"/><Choices name="label" toName="text">{choices}</Choices></View>'


@dataclass
class FineTunes:
    """The product's slow path, replayed: whenever its schedule's labels rule says a fine-tune is
    due (``jobs.scheduled.finetune_grown``; the wall-clock wait for the last one's cost is left
    out), the encoder is fine-tuned on the train side of the split with the product's recipe
    (``learning.candidates.tune_encoder``; from the previous fine-tune's encoder under
    HITL_FINETUNE_WARM_START, else from the base), and the pool and test set are re-embedded
    by it; every retrain after it fits the head on those embeddings, as head retrains after a
    fine-tune do. Clusters and the cold start stay on the base encoder, as in the sync."""

    encoder: TextEncoder  # the float base encoder (fine-tunes train in float)
    settings: Settings
    int8: bool = False  # serve each fine-tuned encoder quantized, as ``--precision int8`` replays

    def due(self, labels: int, last: int | None) -> bool:
        return finetune_grown(labels, last, self.settings)

    def tune(self, pool: Pool, examples: list[Example], previous: TextEncoder | None = None) -> TextEncoder:
        """``previous``: the last fine-tune's (float) encoder, where warm starts are on."""
        spec = parse_label_config(choices_config(pool.names))
        start = previous if previous is not None and self.settings.finetune_warm_start else self.encoder
        tuned = tune_encoder(start, spec, examples, self.settings)
        return tuned.quantized() if self.int8 else tuned

    def describe(self) -> dict[str, Any]:
        """What makes two replays comparable (a rerun reuses finished runs only when this is equal)."""
        s = self.settings
        return {
            "replay": "fine-tunes",
            "epochs": s.finetune_epochs,
            "lr": s.finetune_lr,
            "min_steps": s.finetune_min_steps,
            "int8": self.int8,
            "warm_start": s.finetune_warm_start,
            "min_labels": s.finetune_min_labels,
            "growth": s.finetune_growth,
            "every": s.finetune_every,
        }


@dataclass
class Pool:
    texts: list[str]
    labels: np.ndarray  # class indices
    names: list[str]
    embeddings: np.ndarray


def load_split(folder: Path, split_name: str, limit: int | None) -> tuple[list[str], list[str]]:
    path = folder / f"{split_name}.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} not found: a dataset folder needs train.jsonl and test.jsonl ({{'text','label'}})")
    texts, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
            if limit and len(texts) >= limit:
                break
    return texts, labels


def embed_all(cache: EmbeddingCache, texts: list[str], what: str, progress: bool = True) -> np.ndarray:
    """Embeddings of a whole dataset split through the on-disk cache, with a progress bar."""
    starts = tqdm(range(0, len(texts), 512), desc=f"embedding {what}", disable=not progress)
    return np.concatenate([cache.embed(texts[i : i + 512]) for i in starts])


def macro_f1(pred: np.ndarray, y: np.ndarray, k: int) -> float:
    scores = []
    for c in range(k):
        if not (y == c).any():
            continue
        tp = float(((pred == c) & (y == c)).sum())
        denom = float((pred == c).sum() + (y == c).sum())
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


@dataclass
class HeadVersion:
    """The bundled model's version: a head on the pool's embeddings, its penalty chosen on the held-out
    side, its temperature cross-fitted (as ``learning/candidates.py`` does)."""

    head: Any
    x_pool: np.ndarray
    test_logits: np.ndarray
    temperature: float
    l2: float | str

    @classmethod
    def fit(
        cls, pool: Pool, x_pool: np.ndarray, x_test: np.ndarray, tr: np.ndarray, ho: np.ndarray, k: int, seed: int
    ) -> HeadVersion:
        choice = fit_selected_head(x_pool[tr], pool.labels[tr], x_pool[ho], pool.labels[ho], k, multi_label=False)
        head = choice.head
        temperature = cross_fit_temperature(
            x_pool[tr], pool.labels[tr], k, head.logits(x_pool[ho]), pool.labels[ho], seed=seed, l2=choice.l2
        )
        return cls(head, x_pool, head.logits(x_test), temperature, choice.l2)

    def pool_logits(self, rows: np.ndarray) -> np.ndarray:
        return self.head.logits(self.x_pool[rows])


@dataclass
class PluginVersion:
    """A model plug-in's version: fitted on the train side's texts, its temperature fitted on the
    held-out side's log-probabilities (as ``learning/candidates.calibrate_plugin`` does)."""

    model: PluginClassifier
    pool: Pool
    test_logits: np.ndarray
    temperature: float
    l2: str = ""

    @classmethod
    def fit(cls, name: str, pool: Pool, test: Pool, tr: np.ndarray, ho: np.ndarray) -> PluginVersion:
        texts, labels = [pool.texts[i] for i in tr], [pool.names[pool.labels[i]] for i in tr]
        model = fit_plugin(name, pool.names, texts, labels, timeout_s=3600)
        version = cls(model, pool, _log(model.raw_proba(test.texts)), 1.0)
        if len(ho) >= 10:
            version.temperature = fit_temperature(version.pool_logits(ho), pool.labels[ho])
        return version

    def pool_logits(self, rows: np.ndarray) -> np.ndarray:
        return _log(self.model.raw_proba([self.pool.texts[i] for i in rows]))


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


Version = HeadVersion | PluginVersion


def run_seed(
    pool: Pool,
    test: Pool,
    strategy_name: str,
    seed: int,
    budget: int,
    step: int,
    start: int,
    clusters: np.ndarray,
    holdout: float,
    target_precision: float,
    fine_tunes: FineTunes | None = None,
    plugin: str = "",
) -> tuple[list[dict], dict]:
    """One seed's replay; ``plugin``: a model plug-in (``package.module:Class``) instead of the
    bundled encoder's head."""
    rng = np.random.default_rng(seed)
    n, k = len(pool.texts), len(pool.names)
    if strategy_name == "random":
        labeled = list(rng.choice(n, size=start, replace=False))
    else:  # cold start: cover the pool, from a seed-dependent first task
        cold = ColdStartStrategy(representatives=start, seed=seed)
        labeled = list(np.argsort(cold.scores(None, pool.embeddings, np.arange(n)), kind="stable")[:start])
    base = make_strategy(
        "random" if strategy_name == "random" else strategy_name.removesuffix("-diverse"), seed=seed, batch=step
    )
    heldout_bucket = np.array([is_heldout(i, holdout) for i in range(n)])
    stop_set = np.random.default_rng(10_000 + seed).permutation(n)[:STOP_SET]  # as the sync draws it, once
    previous: dict[int, int] = {}
    kappas: list[tuple[str, float, int]] = []
    changed: list[float] = []
    curve: list[tuple[int, float]] = []
    stopped = False
    x_pool, x_test = pool.embeddings, test.embeddings  # what the head reads: the base encoder's, until a fine-tune
    last_tune: int | None = None
    tuned: TextEncoder | None = None  # the last fine-tune's encoder (a warm start's starting point)
    rows, final = [], {}
    while True:
        examples = [Example(pool.texts[i], (pool.names[pool.labels[i]],), int(i)) for i in labeled]
        train, held = split(examples, holdout)
        tr = np.array([e.task_id for e in train])
        ho = np.array([e.task_id for e in held], dtype=np.int64)
        served = "head" if last_tune is None else "head on fine-tuned encoder"
        if fine_tunes is not None and fine_tunes.due(len(labeled), last_tune):
            encoder = fine_tunes.tune(pool, train, None if tuned is None else getattr(tuned, "float_weights", tuned))
            tuned = encoder
            x_pool, x_test = encoder.embed(pool.texts), encoder.embed(test.texts)
            last_tune, served = len(labeled), "fine-tuned"
        if plugin:  # the operator's model: fitted on the texts, calibrated on the held-out side
            version: Version = PluginVersion.fit(plugin, pool, test, tr, ho)
        else:
            version = HeadVersion.fit(pool, x_pool, x_test, tr, ho, k, seed)
        temperature = version.temperature
        test_logits = version.test_logits
        probs = softmax(test_logits)
        calibrated = softmax(test_logits, temperature)
        # The tasks the model will pre-annotate next: the unlabeled rest of the pool (gold known here).
        rest = np.setdiff1d(np.arange(n), np.array(labeled))
        pool_calibrated = softmax(version.pool_logits(rest), temperature)
        pred = probs.argmax(axis=1)
        # the product's stopping criteria, as the sync computes them after each version
        open_stop = np.setdiff1d(stop_set, np.array(labeled))
        stop_probs = softmax(version.pool_logits(open_stop), temperature)
        answers = dict(zip(open_stop.tolist(), stop_probs.argmax(axis=1).tolist(), strict=True))
        common = sorted(set(previous) & set(answers))
        if len(common) >= 2:
            a, b = [previous[t] for t in common], [answers[t] for t in common]
            kappa = 1.0 if a == b else float(cohen_kappa_score(a, b))
            kappas.append((str(len(labeled)), 0.0 if np.isnan(kappa) else kappa, len(common)))
            changed.append(float(np.mean(np.array(a) != np.array(b))))
        previous = answers
        held_pred = version.pool_logits(ho).argmax(axis=1) if len(ho) else None
        heldout_accuracy = float((held_pred == pool.labels[ho]).mean()) if held_pred is not None else None
        if heldout_accuracy is not None and len(ho) >= 20:
            curve.append((len(train), heldout_accuracy))
        stable = len(kappas) >= WINDOW and all(k >= THRESHOLD for _, k, _ in kappas[-WINDOW:])
        status = StoppingStatus(
            kappas, stable, changed, float(np.mean(1 - stop_probs.max(axis=1))), estimate_gain(curve)
        )
        stop_here = status.stop and not stopped
        stopped = stopped or status.stop
        rows.append(
            {
                "strategy": strategy_name,
                "seed": seed,
                "labels": len(labeled),
                "served": served,
                "accuracy": round(float((pred == test.labels).mean()), 5),
                "macro_f1": round(macro_f1(pred, test.labels, k), 5),
                "ece": round(expected_calibration_error(probs, test.labels), 5),
                "ece_calibrated": round(expected_calibration_error(calibrated, test.labels), 5),
                "ece_pool_calibrated": round(expected_calibration_error(pool_calibrated, pool.labels[rest]), 5),
                "temperature": round(temperature, 4),
                "l2": version.l2,
                "heldout_accuracy": "" if heldout_accuracy is None else round(heldout_accuracy, 5),
                "stop_kappa": round(kappas[-1][1], 5) if kappas else "",
                "stop_uncertainty": round(status.uncertainty or 0.0, 5),
                "stop": int(stop_here),
            }
        )
        if len(labeled) >= budget:
            held_probs = softmax(version.pool_logits(ho), temperature)
            route = routing_threshold(held_probs, pool.labels[ho], target_precision)
            coverage, precision = coverage_at(calibrated, test.labels, route.threshold)
            final = {"threshold": route.threshold, "test_coverage": coverage, "test_precision": precision}
            return rows, final
        unlabeled = np.setdiff1d(np.arange(n), np.array(labeled))
        take = min(step, budget - len(labeled))
        if strategy_name != "random":  # as the sync serves it: held-out tasks come in random order
            held_mask = heldout_bucket[unlabeled]
            explore = min(round(holdout * take), int(held_mask.sum()))
            labeled.extend(int(i) for i in rng.choice(unlabeled[held_mask], size=explore, replace=False))
            unlabeled, take = unlabeled[~held_mask], take - explore
        pool_probs = softmax(version.pool_logits(unlabeled), temperature)  # the sync ranks on calibrated ones
        scores = base.scores(pool_probs, pool.embeddings[unlabeled], unlabeled)
        if strategy_name.endswith("-diverse"):
            scores = diversify_top(scores, clusters[unlabeled], take)
        chosen = unlabeled[np.lexsort((unlabeled, scores))[:take]]
        labeled.extend(int(i) for i in chosen)


def simulate(
    dataset: Path,
    strategy: str,
    budget: int,
    step: int,
    seeds: int,
    out: Path,
    cache_dir: Path,
    encoder: Any,
    start: int = 50,
    pool_size: int | None = None,
    test_size: int | None = None,
    holdout: float = 0.15,
    target_precision: float = 0.98,
    progress: bool = True,
    fine_tunes: FineTunes | None = None,
    plugin: str = "",
) -> dict[str, Any]:
    """``fine_tunes``: replay the product's fine-tunes too (the default of ``hitl simulate``);
    None: the head-only replay (``--head-only``), fast. ``plugin``: replay a model plug-in
    (``package.module:Class``) instead of the bundled model (the encoder still embeds the pool for
    diversity, as the sync does)."""
    if strategy not in SIM_STRATEGIES:
        raise SystemExit(f"unknown strategy {strategy!r}; choose one of {', '.join(SIM_STRATEGIES)}")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    train_texts, train_labels = load_split(dataset, "train", pool_size)
    test_texts, test_labels = load_split(dataset, "test", test_size)
    names = sorted(set(train_labels))
    index = {name: i for i, name in enumerate(names)}
    cache = EmbeddingCache(cache_dir, encoder)
    embed = lambda texts, what: embed_all(cache, texts, what, progress)  # noqa: E731
    pool = Pool(train_texts, np.array([index[x] for x in train_labels]), names, embed(train_texts, "pool"))
    test = Pool(test_texts, np.array([index.get(x, -1) for x in test_labels]), names, embed(test_texts, "test"))
    clusters = assign(pool.embeddings, kmeans(pool.embeddings, default_k(len(pool.texts), len(names))))

    curve_path = out / "curve.csv"
    done: dict[tuple[str, int], list[dict]] = {}
    replay = (
        {"replay": "plugin", "model": plugin, "encoder": encoder.identity}
        if plugin
        else {"replay": "head-only", "encoder": encoder.identity}
        if fine_tunes is None
        else {**fine_tunes.describe(), "encoder": encoder.identity}
    )
    replay_path = out / "replay.json"
    same_replay = replay_path.exists() and json.loads(replay_path.read_text()) == replay
    replay_path.write_text(json.dumps(replay))
    if curve_path.exists() and same_replay:  # resumable: keep finished (strategy, seed) runs of the same budget
        with open(curve_path) as handle:
            for row in csv.DictReader(handle):
                done.setdefault((row["strategy"], int(row["seed"])), []).append(row)
        done = {
            key: rows
            for key, rows in done.items()
            if max(int(r["labels"]) for r in rows) == budget
            and all(r.get(c) is not None for c in COLUMNS for r in rows)
        }
    finals_path = out / "finals.json"
    finals = json.loads(finals_path.read_text()) if finals_path.exists() and done else {}
    strategies = [strategy] if strategy == "random" else [strategy, "random"]
    rows: list[dict] = []
    included: set[tuple[str, int]] = set()
    for name in strategies:
        for seed in tqdm(range(seeds), desc=name, disable=not progress):
            included.add((name, seed))
            if (name, seed) in done and f"{name}:{seed}" in finals:
                rows.extend(done[(name, seed)])
                continue
            seed_started = time.perf_counter()
            seed_rows, final = run_seed(
                pool, test, name, seed, budget, step, start, clusters, holdout, target_precision, fine_tunes, plugin
            )
            final["seconds"] = round(time.perf_counter() - seed_started, 1)
            rows.extend(seed_rows)
            finals[f"{name}:{seed}"] = final
            # after every seed: an interrupted replay (a fine-tuned one runs for many minutes) resumes here
            later = [row for key, kept in done.items() if key not in included for row in kept]
            _save(curve_path, rows + later, finals_path, finals)
    _save(curve_path, rows, finals_path, finals)
    routing: dict[str, list[dict]] = {}
    for key, final in finals.items():
        routing.setdefault(key.rsplit(":", 1)[0], []).append(final)
    summary = summarize(rows, strategies, routing, dataset.name, target_precision)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["replay"] = replay
    summary["seed_seconds"] = {key: final.get("seconds") for key, final in finals.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    title = (
        f"Active learning on {dataset.name}: model plug-in {plugin}"
        if plugin
        else f"Active learning on {dataset.name}: MiniLM embeddings + linear head"
        if fine_tunes is None
        else f"Active learning on {dataset.name}: MiniLM fine-tuned as the product schedules it"
    )
    plot(rows, strategies, out / "learning_curves.png", title)
    (out / "summary.md").write_text(markdown(summary))
    return summary


def _save(curve_path: Path, rows: list[dict], finals_path: Path, finals: dict[str, Any]) -> None:
    """curve.csv and finals.json as they stand, each replaced whole (never half written)."""
    partial = curve_path.with_suffix(".tmp")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(curve_path)
    finals_partial = finals_path.with_suffix(".tmp")
    finals_partial.write_text(json.dumps(finals, indent=2))
    finals_partial.replace(finals_path)


def mean_curve(rows: list[dict], strategy: str, column: str = "accuracy") -> dict[int, float]:
    by_labels: dict[int, list[float]] = {}
    for row in rows:
        if row["strategy"] == strategy:
            by_labels.setdefault(int(row["labels"]), []).append(float(row[column]))
    return {labels: statistics.mean(values) for labels, values in sorted(by_labels.items())}


def summarize(
    rows: list[dict], strategies: list[str], routing: dict[str, list[dict]], dataset: str, target_precision: float
) -> dict[str, Any]:
    random_curve = mean_curve(rows, "random")
    random_final = list(random_curve.values())[-1]
    result: dict[str, Any] = {"dataset": dataset, "random_final_accuracy": round(random_final, 4), "strategies": {}}
    for name in strategies:
        curve = mean_curve(rows, name)
        reached = next((labels for labels, acc in curve.items() if acc >= random_final), None)
        finals = routing.get(name, [])
        result["strategies"][name] = {
            "final_accuracy": round(list(curve.values())[-1], 4),
            "labels_to_reach_random_final": reached,
            "area_under_curve": round(float(np.mean(list(curve.values()))), 4),
            "final_ece": round(list(mean_curve(rows, name, "ece").values())[-1], 4),
            "final_ece_calibrated": round(list(mean_curve(rows, name, "ece_calibrated").values())[-1], 4),
            "final_ece_pool_calibrated": round(list(mean_curve(rows, name, "ece_pool_calibrated").values())[-1], 4),
            "stop": stop_point(rows, name),
            "routing": {
                "target_precision": target_precision,
                "test_coverage": _mean([f["test_coverage"] for f in finals]),
                "test_precision": _mean([f["test_precision"] for f in finals if f["test_precision"] is not None]),
            },
        }
    return result


def stop_point(rows: list[dict], strategy: str) -> dict[str, Any]:
    """Where the product's stopping criteria (``monitoring/stopping.py``) would have told the admin to stop,
    against the labels needed to reach 99 % of the final accuracy; medians over seeds (a seed that
    never stopped counts at the full budget, giving up nothing)."""
    at_stop, needed, given_up, stopped = [], [], [], 0
    for seed in sorted({int(r["seed"]) for r in rows if r["strategy"] == strategy}):
        curve = [r for r in rows if r["strategy"] == strategy and int(r["seed"]) == seed]
        final = float(curve[-1]["accuracy"])
        stop = next((r for r in curve if int(r["stop"] or 0)), None)
        stopped += stop is not None
        stop = stop or curve[-1]
        at_stop.append(int(stop["labels"]))
        given_up.append(final - float(stop["accuracy"]))
        needed.append(next(int(r["labels"]) for r in curve if float(r["accuracy"]) >= 0.99 * final))
    return {
        "labels_at_stop": statistics.median(at_stop),
        "labels_to_99pct_of_final": statistics.median(needed),
        "accuracy_given_up": round(statistics.median(given_up), 4),
        "seeds_stopped": stopped,
        "seeds": len(at_stop),
    }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def plot(
    rows: list[dict],
    strategies: list[str],
    path: Path,
    title: str,
    column: str = "accuracy",
    ylabel: str = "test accuracy",
    xlabel: str = "labels",
) -> None:
    """Learning curves: the mean over seeds of ``column`` per strategy, with a ±1 std band."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.subplots()
    for name in strategies:
        seeds = sorted({int(r["seed"]) for r in rows if r["strategy"] == name})
        curves = [[float(r[column]) for r in rows if r["strategy"] == name and int(r["seed"]) == s] for s in seeds]
        labels = sorted({int(r["labels"]) for r in rows if r["strategy"] == name})
        values = np.array(curves)
        mean, std = values.mean(axis=0), values.std(axis=0)
        ax.plot(labels, mean, label=f"{name} ({len(seeds)} seeds)", linestyle="--" if name == "random" else "-")
        ax.fill_between(labels, mean - std, mean + std, alpha=0.15)
        stop = stop_point(rows, name) if column == "accuracy" and "stop" in rows[0] else None
        if stop and stop["seeds_stopped"]:  # where the stopping criteria told the admin to stop (median)
            at = float(stop["labels_at_stop"])
            ax.axvline(at, color=ax.lines[-1].get_color(), linestyle=":", alpha=0.8)
            text = f"stop at {at:.0f} ({stop['seeds_stopped']} of {stop['seeds']} seeds)"
            ax.annotate(
                text,
                (at, float(np.min(mean))),
                rotation=90,
                fontsize=8,
                va="bottom",
                ha="right",
                color=ax.lines[-1].get_color(),
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# {summary['dataset']}: random reaches {summary['random_final_accuracy']:.4f} at the full budget "
        f"({summary.get('replay', {}).get('replay', 'head-only')} replay)",
        "",
        "| strategy | final accuracy | labels to reach random's final | AULC | ECE | ECE calibrated | "
        "ECE calibrated, unlabeled pool | coverage at target precision | labels at stop | labels to 99 % "
        "of final | accuracy given up at stop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["strategies"].items():
        routing = s["routing"]
        lines.append(
            f"| {name} | {s['final_accuracy']:.4f} | {s['labels_to_reach_random_final'] or 'not reached'} | "
            f"{s['area_under_curve']:.4f} | {s['final_ece']:.4f} | {s['final_ece_calibrated']:.4f} | "
            f"{s['final_ece_pool_calibrated']:.4f} | "
            f"{routing['test_coverage']} at {routing['target_precision']} (precision {routing['test_precision']}) | "
            f"{s['stop']['labels_at_stop']:.0f} ({s['stop']['seeds_stopped']} of {s['stop']['seeds']} seeds stopped) | "
            f"{s['stop']['labels_to_99pct_of_final']:.0f} | {s['stop']['accuracy_given_up']:.4f} |"
        )
    return "\n".join(lines) + "\n"
