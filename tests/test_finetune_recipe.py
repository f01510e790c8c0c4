"""The fine-tune recipe's parts: a small label set gets enough optimiser steps, retrains and the
replay use the same recipe, and the contrastive stage the benchmark tries pairs labels as SetFit
does (tiny encoder: the recipe's figures are in README, from ``hitl bench finetune``)."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from backend.ids import JobKind
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning import candidates
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import encoder_from_settings
from backend.models.finetune import finetune
from backend.tools.bench.contrastive import contrastive_stage, label_pairs
from backend.tools.bench.finetune import bench_finetune
from backend.tools.simulate import FineTunes, Pool, choices_config
from tests.support.data import data_dir, load_jsonl


def _examples(n: int) -> tuple[list[Example], object]:
    rows = load_jsonl("trec", "train", n)
    spec = parse_label_config(choices_config(sorted({r["label"] for r in rows})))
    return [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows)], spec


def test_a_small_label_set_gets_at_least_min_steps(settings):
    examples, spec = _examples(40)  # three batches of 16
    encoder = encoder_from_settings(settings)
    for min_steps, expected in ((0, 6), (30, 30), (31, 33)):  # epochs = max(2, ceil(min_steps / 3))
        seen: list[tuple[int, int]] = []
        finetune(encoder, spec, examples, epochs=2, min_steps=min_steps, progress=lambda d, t, s=seen: s.append((d, t)))
        assert seen[-1] == (expected, expected), (min_steps, seen[-1])


def test_retrains_fine_tune_with_the_settings_recipe(settings, monkeypatch):
    examples, spec = _examples(40)
    calls: list[tuple[tuple, dict]] = []
    real = candidates.finetune
    monkeypatch.setattr(candidates, "finetune", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    tuned = settings.model_copy(update={"finetune_min_steps": 7, "finetune_epochs": 1, "finetune_lr": 1e-4})
    cache = EmbeddingCache(settings.data_dir / "cache", encoder_from_settings(settings))
    candidate = candidates.fit_candidate(spec, JobKind.FULL, examples[:30], examples[30:], cache, tuned)
    recipe = {"epochs": 1, "lr": 1e-4, "min_steps": 7, "seed": 0}
    assert candidate.fine_tuned and [k for _, k in calls] == [recipe] and calls[0][0][2] == examples[:30]
    # the replay fine-tunes with the same recipe, on the examples it is given
    names = sorted(spec.labels)
    pool = Pool(
        [e.text for e in examples],
        np.array([names.index(e.labels[0]) for e in examples]),
        names,
        np.zeros((len(examples), cache.encoder.dim)),
    )
    FineTunes(cache.encoder, tuned).tune(pool, examples[:20])
    assert [k for _, k in calls[1:]] == [recipe] and calls[1][0][2] == examples[:20]


@pytest.mark.tools  # the benchmark's contrastive stage (backend/tools/bench)
def test_label_pairs_are_half_same_label_half_different():
    examples = [Example(f"t{i}", (("a", "b", "c")[i % 3],), i) for i in range(30)]
    pairs = label_pairs(examples, 200, seed=1)
    assert len(pairs) == 200
    for a, b, target in pairs:
        assert a != b and target == float(examples[a].labels == examples[b].labels)
    assert sum(t for _, _, t in pairs) == 100
    # an odd count, and a label with one example (it has no same-label partner): never more pairs than asked
    lonely = [*examples, Example("t30", ("d",), 30)]
    pairs = label_pairs(lonely, 201, seed=2)
    assert len(pairs) == 201 and all(t == 0.0 for a, _, t in pairs if a == 30)
    assert all(t == float(lonely[a].labels == lonely[b].labels) for a, b, t in pairs)
    assert label_pairs([Example("x", ("a",), 0), Example("y", ("a",), 1)], 10) == []  # one label: no pairs


@pytest.mark.tools  # the benchmark's contrastive stage (backend/tools/bench)
def test_contrastive_stage_changes_the_encoder(settings):
    examples, _ = _examples(40)
    base = encoder_from_settings(settings)
    tuned = contrastive_stage(base, examples, pairs=32)
    assert tuned.identity != base.identity
    assert abs(tuned.embed(["what is a fjord ?"]) - base.embed(["what is a fjord ?"])).max() > 1e-4


@pytest.mark.tools  # the benchmark's contrastive stage (backend/tools/bench)
def test_bench_finetune_contrastive_compares_with_the_products_fine_tune(settings, capsys):
    args = argparse.Namespace(
        data=str(data_dir()),
        dataset="trec",
        labels=80,
        seeds=1,
        epochs=None,
        lr=None,
        validation=100,
        warm_start=False,
        contrastive=64,
        min_steps=None,
    )
    assert bench_finetune(args, settings.model_copy(update={"finetune_epochs": 1, "finetune_min_steps": 0})) == 0
    out = capsys.readouterr().out.strip().splitlines()
    base = re.search(r"validation: head \S+ fine-tuned (\S+)", out[1])
    stage = re.match(
        r"  contrastive stage \(64 pairs, \S+s\), then the head: test \S+, validation (\S+); then the "
        r"fine-tune: test \S+, validation (\S+)",
        out[2],
    )
    last = re.fullmatch(r"setfit_validation_gain=(\S+) contrastive_finetune_validation_gain=(\S+)", out[-1])
    assert base and stage and last
    assert abs(float(last[1]) - (float(stage[1]) - float(base[1]))) < 1e-3
    assert abs(float(last[2]) - (float(stage[2]) - float(base[1]))) < 1e-3
