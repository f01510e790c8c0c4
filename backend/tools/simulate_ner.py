"""Active-learning replay for NER (``hitl simulate`` on a tokens/tags dataset such as WNUT-17).

The same loop as ``simulate.py`` with the product's NER pieces: sentences become texts with entity
spans, the tagger's head is fitted on cached word states (``fit_tagger`` with the worker's
``WordStateCache``), the pool is ranked by its weakest word (``weakest_words``, as the sync does),
15 % of every batch are held-out tasks in random order (as the sync serves them), and each step is
scored by entity-level exact-match F1 on the test split. Both runs start from the same random set.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from backend.labeling.spans import Span, from_tokens
from backend.labeling.spec import TaskKind, TaskSpec
from backend.learning.gate import evaluate_spans
from backend.models import uncertainty
from backend.models.encoder import TextEncoder
from backend.models.tagger import fit_tagger, weakest_words
from backend.models.word_state_cache import WordStateCache
from backend.serving.routing import is_heldout
from backend.tools.simulate import plot

COLUMNS = ["strategy", "seed", "labels", "f1", "precision", "recall"]
NER_STRATEGIES = ("margin", "random")


def is_ner_dataset(folder: Path) -> bool:
    with open(folder / "train.jsonl", encoding="utf-8") as handle:
        return "tokens" in json.loads(handle.readline())


def _load(folder: Path, split: str, limit: int | None) -> list[tuple[str, list[Span]]]:
    rows = []
    with open(folder / f"{split}.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append(from_tokens(row["tokens"], row["tags"]))
            if limit and len(rows) >= limit:
                break
    return rows


def simulate_ner(
    dataset: Path,
    strategy: str,
    budget: int,
    step: int,
    seeds: int,
    out: Path,
    cache_dir: Path,
    encoder: TextEncoder,
    start: int = 50,
    pool_size: int | None = None,
    test_size: int | None = None,
    holdout: float = 0.15,
    progress: bool = True,
) -> dict[str, Any]:
    if strategy not in NER_STRATEGIES:
        raise SystemExit(f"strategy {strategy!r} is not available for NER; choose one of {', '.join(NER_STRATEGIES)}")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    pool, test = _load(dataset, "train", pool_size), _load(dataset, "test", test_size)
    types = sorted({s.label for _, spans in pool for s in spans})
    spec = TaskSpec(TaskKind.NER, "label", "text", "text", tuple(types))
    cache = WordStateCache(cache_dir, encoder.identity, encoder.dim)
    texts, test_texts = [t for t, _ in pool], [t for t, _ in test]
    gold_test = [_example(t, s) for t, s in test]
    held_bucket = np.array([is_heldout(i, holdout) for i in range(len(pool))])
    rows: list[dict[str, Any]] = []
    strategies = [strategy] if strategy == "random" else [strategy, "random"]
    for seed in range(seeds):
        first = list(np.random.default_rng(seed).choice(len(pool), size=start, replace=False))
        for name in strategies:
            labeled = list(first)
            rng = np.random.default_rng(1000 + seed)
            for _ in tqdm(range((budget - start) // step + 1), desc=f"{name} seed {seed}", disable=not progress):
                train = [i for i in labeled if not held_bucket[i]]
                tagger = fit_tagger(encoder, spec, [texts[i] for i in train], [pool[i][1] for i in train], cache=cache)
                metrics = evaluate_spans([t.spans for t in tagger.tag(test_texts)], gold_test)
                scores = {k: round(metrics[k], 5) for k in ("f1", "precision", "recall")}
                rows.append({"strategy": name, "seed": seed, "labels": len(labeled), **scores})
                if len(labeled) >= budget:
                    break
                labeled += _next(
                    tagger, texts, labeled, min(step, budget - len(labeled)), name, held_bucket, holdout, rng
                )
    with open(out / "curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = _summarize(rows, strategies, dataset.name)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(
        rows,
        strategies,
        out / "learning_curves.png",
        f"Active learning on {dataset.name}: MiniLM word states + tag head",
        column="f1",
        ylabel="test entity F1 (exact match)",
        xlabel="annotated sentences",
    )
    (out / "summary.md").write_text(_markdown(summary))
    return summary


def _example(text: str, spans: list[Span]) -> Any:
    from backend.labeling.examples import Example

    return Example(text, tuple(sorted({s.label for s in spans})), spans=tuple(spans))


def _next(
    tagger: Any,
    texts: list[str],
    labeled: list[int],
    take: int,
    name: str,
    held_bucket: np.ndarray,
    holdout: float,
    rng: np.random.Generator,
) -> list[int]:
    unlabeled = np.setdiff1d(np.arange(len(texts)), np.array(labeled))
    if name == "random":
        return [int(i) for i in rng.choice(unlabeled, size=take, replace=False)]
    held = unlabeled[held_bucket[unlabeled]]  # as the sync serves them: held-out tasks in random order
    explore = min(round(holdout * take), len(held))
    picked = [int(i) for i in rng.choice(held, size=explore, replace=False)]
    rest = unlabeled[~held_bucket[unlabeled]]
    scores = uncertainty.queue_key(weakest_words(tagger.tag([texts[i] for i in rest]), name, len(tagger.tags)), name)
    return picked + [int(i) for i in rest[np.lexsort((rest, scores))[: take - explore]]]


def _curve(rows: list[dict], strategy: str) -> dict[int, float]:
    by: dict[int, list[float]] = {}
    for row in rows:
        if row["strategy"] == strategy:
            by.setdefault(int(row["labels"]), []).append(float(row["f1"]))
    return {labels: statistics.mean(v) for labels, v in sorted(by.items())}


def _summarize(rows: list[dict], strategies: list[str], dataset: str) -> dict[str, Any]:
    random_final = list(_curve(rows, "random").values())[-1]
    result: dict[str, Any] = {
        "dataset": dataset,
        "metric": "entity-level exact F1",
        "random_final_f1": round(random_final, 4),
        "strategies": {},
    }
    for name in strategies:
        curve = _curve(rows, name)
        result["strategies"][name] = {
            "final_f1": round(list(curve.values())[-1], 4),
            "labels_to_reach_random_final": next((n for n, f1 in curve.items() if f1 >= random_final), None),
            "area_under_curve": round(float(np.mean(list(curve.values()))), 4),
        }
    return result


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# {summary['dataset']} (NER): random reaches F1 {summary['random_final_f1']:.4f} at the full budget",
        "",
        "| strategy | final F1 | labels to reach random's final | AULC |",
        "|---|---|---|---|",
    ]
    for name, s in summary["strategies"].items():
        reached = s["labels_to_reach_random_final"] or "not reached"
        lines.append(f"| {name} | {s['final_f1']:.4f} | {reached} | {s['area_under_curve']:.4f} |")
    return "\n".join(lines) + "\n"
