"""``hitl bench ner``: entity-level F1 on WNUT-17 through the product's own path.

Training sentences become Label Studio tasks with span annotations (UTF-16 offsets, as the editor
writes them); the retrain path turns them into examples (``dataset.build_dataset``), fits the
tagger, and publishes a registry version; the test sentences go through ``Predictor.predict`` as
Label Studio's ``/predict`` would send them, and the returned regions are scored against the gold
spans (exact match of start, end and type). The baseline in the same run tags capitalised words.
The dev split stands in for the held-out annotations that calibration and routing use.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.labeling import TaskSpec, parse_label_config
from backend.labeling.examples import Example
from backend.labeling.spans import Span, from_tokens, spans_from_result, spans_result, tags_to_spans
from backend.learning.candidates import calibrate_tagger, publish_head
from backend.learning.dataset import build_dataset
from backend.learning.gate import evaluate_spans
from backend.models.tagger import finetune_tagger, fit_tagger
from backend.models.word_state_cache import WordStateCache
from backend.serving.predictor import Predictor
from backend.settings import Settings
from backend.tools.bench.common import dataset_dir, read_jsonl

CONFIG = Path(__file__).resolve().parents[3] / "labeling_configs" / "named_entity_recognition.xml"  # the repository's


def label_studio_tasks(rows: list[dict[str, Any]], spec: TaskSpec, first_id: int = 1) -> list[dict[str, Any]]:
    """Label Studio-shaped annotated tasks, as the worker pulls them."""
    tasks = []
    for n, row in enumerate(rows):
        text, spans = from_tokens(row["tokens"], row["tags"])
        annotation = {
            "id": first_id + n,
            "result": spans_result(spec, spans, text),
            "was_cancelled": False,
            "created_at": "2026-11-25T00:00:00Z",
            "updated_at": "2026-11-25T00:00:00Z",
        }
        tasks.append({"id": first_id + n, "data": {spec.data_key: text}, "annotations": [annotation]})
    return tasks


def capitalised_runs(train: Sequence[Example], test: Sequence[Example]) -> list[list[Span]]:
    """Baseline without learning: every run of capitalised words (not sentence-initial) is an entity
    of the type most frequent in training. (A gazetteer of training entities scores 0 here: WNUT-17
    was built so that test entities are unseen in training.)"""
    types = Counter(s.label for ex in train for s in ex.spans)
    label = types.most_common(1)[0][0] if types else "person"
    out = []
    for ex in test:
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", ex.text)]
        caps = [i > 0 and ex.text[a].isupper() for i, (a, _) in enumerate(words)]
        tags = [("I" if i and caps[i - 1] else "B") + "-" + label if cap else "O" for i, cap in enumerate(caps)]
        out.append(tags_to_spans(tags, words))
    return out


def served_f1(
    settings: Settings,
    spec: TaskSpec,
    kind: str,
    tagger: Any,
    train: list[Example],
    test_tasks: list[dict[str, Any]],
    test: list[Example],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Publish the tagger, predict the test tasks through the Predictor (which loads the version
    from the registry as the server does), and score the regions it returns, and the answers it
    marks ``auto_accept`` (coverage, and the share of them exactly right)."""
    predictor = Predictor(settings)
    predictor.start(background=False)
    publish_head(
        predictor.registry, "1", spec, tagger.encoder, tagger.head, train, extra=extra, fine_tuned=kind == "full"
    )
    started = time.perf_counter()
    items = predictor.predict("1", spec, test_tasks)
    seconds = time.perf_counter() - started
    predicted = [
        spans_from_result(spec, it.get("result") or [], ex.text) or [] for it, ex in zip(items, test, strict=True)
    ]
    accepted = [
        {s.key for s in p} == {s.key for s in ex.spans}
        for p, ex, it in zip(predicted, test, items, strict=True)
        if it.get("auto_accept")
    ]
    routing = {"coverage": len(accepted) / len(test), "exact": sum(accepted) / len(accepted) if accepted else None}
    return evaluate_spans(predicted, test), seconds, routing


def bench_ner(args: argparse.Namespace, settings: Settings) -> int:
    folder = dataset_dir(args.data, args.dataset, splits=("train", "test", "dev"))
    spec = parse_label_config(CONFIG.read_text())
    rows_train = read_jsonl(folder / "train.jsonl", args.train)
    rows_test = read_jsonl(folder / "test.jsonl", args.test)
    train = build_dataset(1, label_studio_tasks(rows_train, spec), spec, settings.max_text_chars).examples
    test_tasks = label_studio_tasks(rows_test, spec, first_id=100_000)
    test = build_dataset(1, test_tasks, spec, settings.max_text_chars).examples
    dev_rows = read_jsonl(folder / "dev.jsonl", args.dev)
    dev = build_dataset(1, label_studio_tasks(dev_rows, spec, first_id=50_000), spec, settings.max_text_chars).examples
    for task in test_tasks:
        task.pop("annotations")
    print(
        f"WNUT-17: {len(train)} training sentences ({sum(len(e.spans) for e in train)} entities), "
        f"{len(test)} test sentences ({sum(len(e.spans) for e in test)} entities)"
    )

    from backend.models.encoder import encoder_from_settings

    encoder = encoder_from_settings(settings)
    base = evaluate_spans(capitalised_runs(train, test), test)
    print(f"capitalised-words baseline: P={base['precision']:.3f} R={base['recall']:.3f} F1={base['f1']:.3f}")
    results = {}
    texts, spans = [e.text for e in train], [e.spans for e in train]
    for kind in ["head", *(["full"] if args.full else [])]:
        fit_s = []
        tagger = None
        with tempfile.TemporaryDirectory() as states:  # the worker's word-state cache: cold, then warm
            cache = WordStateCache(Path(states), encoder.identity, encoder.dim)
            for _ in range(args.rounds if kind == "head" else 1):
                started = time.perf_counter()
                if kind == "head":
                    tagger = fit_tagger(encoder, spec, texts, spans, cache=cache)
                else:
                    tagger = finetune_tagger(encoder, spec, texts, spans, epochs=args.epochs)
                fit_s.append(time.perf_counter() - started)
        assert tagger is not None
        tagger.cache = None  # the served version is measured as the server runs it, without the cache
        if kind == "head":
            warm = fit_s[1:] or fit_s
            print(
                f"head fit: {fit_s[0]:.1f}s with the word-state cache cold, "
                f"{statistics.median(warm):.1f}s warm (median of {len(warm)})"
            )
        with tempfile.TemporaryDirectory() as tmp:
            scoped = settings.model_copy(update={"registry_dir": Path(tmp) / "registry", "data_dir": Path(tmp)})
            extra = calibrate_tagger(tagger, spec, dev, settings)  # dev stands in for the held-out annotations
            metrics, predict_s, routing = served_f1(scoped, spec, kind, tagger, train, test_tasks, test, extra)
        calibration, route = extra.get("calibration", {}), extra.get("routing", {})
        print(
            f"{kind}: temperature {calibration.get('temperature')} (word ECE on dev "
            f"{calibration.get('heldout_word_ece_before')} → {calibration.get('heldout_word_ece_after')}); "
            f"auto_accept threshold {route.get('threshold')} for {route.get('target_precision')} exact answers: "
            f"{routing['coverage']:.1%} of test answers accepted, {routing['exact'] or 0:.3f} of them exactly right"
        )
        results[kind] = metrics["f1"]
        per_type = " ".join(f"{k}={v:.2f}" for k, v in metrics["per_type_f1"].items())  # type: ignore[union-attr]
        print(
            f"{kind}: train {statistics.median(fit_s):.1f}s (median of {len(fit_s)}), /predict path "
            f"{len(test) / predict_s:.0f} sentences/s; P={metrics['precision']:.3f} R={metrics['recall']:.3f} "
            f"F1={metrics['f1']:.3f}; {per_type}"
        )
    line = " ".join(f"ner_f1_{k}={v:.3f}" for k, v in results.items())
    ratios = " ".join(f"ratio_{k}_vs_baseline={v / max(base['f1'], 1e-9):.2f}" for k, v in results.items())
    print(f"{line} baseline_f1={base['f1']:.3f} {ratios}")
    return 0
