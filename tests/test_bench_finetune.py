"""`hitl bench finetune` runs the product's head and fine-tune paths on the same labels and ends
with the line the issue asks for (tiny encoder here: the figures themselves are in README)."""

from __future__ import annotations

import argparse
import re

import pytest

from backend.tools.bench.finetune import bench_finetune
from tests.support.data import data_dir

pytestmark = pytest.mark.tools  # a replay or benchmark: ./scripts/test.sh --quick leaves it out


def test_bench_finetune_compares_both_paths_on_the_same_labels(settings, capsys):
    args = argparse.Namespace(
        data=str(data_dir()),
        dataset="trec",
        labels=80,
        seeds=1,
        epochs=None,
        lr=None,
        validation=100,
        warm_start=False,
        contrastive=0,
        min_steps=None,
    )
    assert bench_finetune(args, settings.model_copy(update={"finetune_epochs": 1, "finetune_min_steps": 0})) == 0
    out = capsys.readouterr().out.strip().splitlines()
    seed = re.match(
        r"seed 0: head (\S+)  fine-tuned (\S+)  \((\S+)s, (\d+) train \+ (\d+) held out\); validation: "
        r"head (\S+) fine-tuned (\S+)",
        out[1],
    )
    assert seed and int(seed[4]) + int(seed[5]) == 80
    head, full = float(seed[1]), float(seed[2])
    assert 0 <= head <= 1 and 0 <= full <= 1
    last = re.fullmatch(r"finetune_80_s=(\S+) accuracy_gain_80=(\S+)", out[-1])
    assert last and float(last[1]) > 0 and abs(float(last[2]) - (full - head)) < 1e-3


def test_bench_finetune_warm_start_compares_with_the_fine_tune_from_the_base(settings, capsys):
    args = argparse.Namespace(
        data=str(data_dir()),
        dataset="trec",
        labels=80,
        seeds=1,
        epochs=None,
        lr=None,
        validation=100,
        warm_start=True,
        contrastive=0,
        min_steps=None,
    )
    assert bench_finetune(args, settings.model_copy(update={"finetune_epochs": 1, "finetune_min_steps": 0})) == 0
    out = capsys.readouterr().out.strip().splitlines()
    warm = re.match(r"  warm start from a fine-tune on 40 of them: test (\S+), validation (\S+)", out[2])
    base = re.search(r"validation: head \S+ fine-tuned (\S+)", out[1])
    assert warm and base
    last = re.fullmatch(r"warm_start_validation_gain=(\S+)", out[-1])
    assert last and abs(float(last[1]) - (float(warm[2]) - float(base[1]))) < 1e-3
