"""``hitl bench``: benchmarks that print medians and ratios against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import importlib

from backend.settings import Settings

BENCHES = (
    "predict",
    "retrain",
    "sync",
    "ner",
    "head",
    "load",
    "finetune",
    "precision",
    "label-errors",
    "drift",
    "batch-correction",
    "encoders",
    "scale",
)

DATASET_HELP = "a folder with train.jsonl and test.jsonl, or its name under --data (default: {})"
DATA_HELP = (
    "folder holding the datasets by name (default: HITL_SHARED_DATA, else ../shared/data); the full datasets "
    "are not in this repository"
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="benchmarks (print medians; the last line holds the ratios)")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    predict = bsub.add_parser(
        "predict", help="/predict throughput over real HTTP vs the raw forward pass and a one-task-at-a-time loop"
    )
    _data_args(predict, "ag_news")
    predict.add_argument("--batches", type=int, default=8, help="batches of --batch-size texts per round (8)")
    predict.add_argument("--batch-size", type=int, default=64, help="tasks per /predict request (64)")
    predict.add_argument("--rounds", type=int, default=5, help="repetitions; medians are reported (5)")
    predict.add_argument("--naive-tasks", type=int, default=128, help="tasks timed for the naive loop (128)")
    retrain = bsub.add_parser(
        "retrain", help="annotation webhook → new version served (fast path), and a full fine-tune, end to end"
    )
    _data_args(retrain, "ag_news")
    retrain.add_argument("--annotations", type=int, default=1000, help="AG News annotations in the project (1000)")
    retrain.add_argument("--runs", type=int, default=5, help="timed corrections; the median is reported (5)")
    sync = bsub.add_parser(
        "sync",
        help="pool rescoring from cached embeddings, bulk vs single prediction writes, and the sync after a publish",
    )
    _data_args(sync, "ag_news")
    sync.add_argument("--pool", type=int, default=100_000, help="synthetic pool size (100000)")
    sync.add_argument("--sample", type=int, default=2000, help="tasks given a real forward pass (2000)")
    sync.add_argument(
        "--predictions",
        type=int,
        default=1000,
        help="predictions written each way, and the pool of the syncs after a publish (1000)",
    )
    sync.add_argument(
        "--rounds", type=int, default=3, help="rescoring repetitions and publishes; medians are reported (3)"
    )
    ner = bsub.add_parser(
        "ner", help="entity-level F1 on WNUT-17 through the retrain and /predict paths, vs a capitalised-words baseline"
    )
    _data_args(ner, "wnut17")
    ner.add_argument("--train", type=int, default=1000, help="training sentences, from the start of train.jsonl (1000)")
    ner.add_argument("--test", type=int, help="test sentences (default: all 1,287)")
    ner.add_argument("--dev", type=int, default=500, help="dev sentences used as held-out annotations (500)")
    ner.add_argument("--full", action="store_true", help="also fine-tune the encoder (slow path; minutes)")
    ner.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs with --full (4)")
    ner.add_argument("--rounds", type=int, default=4, help="head fits: the first with the cache cold, then warm (4)")
    head = bsub.add_parser(
        "head", help="the head's L2 penalty chosen on held-out annotations vs the fixed default, per project size"
    )
    _data_args(head, "trec")
    head.add_argument("--sizes", default="500,1000,2000,all", help="annotations per project (500,1000,2000,all)")
    head.add_argument("--seeds", type=int, default=3, help="random draws per size; medians are reported (3)")
    load = bsub.add_parser(
        "load", help="concurrent /predict clients against gunicorn with a version published mid-run (no errors)"
    )
    _data_args(load, "ag_news")
    load.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    load.add_argument("--seconds", type=float, default=60, help="length of the loaded run (60)")
    load.add_argument("--baseline-seconds", type=float, default=10, help="length of the one-client run (10)")
    load.add_argument("--batch-size", type=int, default=8, help="tasks per /predict request (8)")
    load.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (2)")
    _add_finetune(bsub)
    _add_batch_correction(bsub)
    _add_encoders(bsub)
    _add_scale(bsub)


def _add_finetune(bsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    finetune = bsub.add_parser(
        "finetune", help="a fine-tune vs the head on the same random labels (product code and defaults)"
    )
    _data_args(finetune, "trec")
    finetune.add_argument("--labels", type=int, default=500, help="random annotations per draw (500)")
    finetune.add_argument("--seeds", type=int, default=3, help="random draws; medians are reported (3)")
    finetune.add_argument("--epochs", type=int, help="fine-tune epochs (default HITL_FINETUNE_EPOCHS)")
    finetune.add_argument("--lr", type=float, help="encoder learning rate (default HITL_FINETUNE_LR)")
    finetune.add_argument("--min-steps", type=int, help="fewest optimiser steps (default HITL_FINETUNE_MIN_STEPS)")
    finetune.add_argument(
        "--validation",
        type=int,
        default=1000,
        help="validation texts carved from train, "
        "never labeled: recipes are chosen on these, not on the test set (1000)",
    )
    finetune.add_argument(
        "--warm-start",
        action="store_true",
        help="also fine-tune from an encoder already "
        "fine-tuned on the first half of the labels (the project's previous fine-tune), and compare "
        "with the product's fine-tune from the base encoder",
    )
    finetune.add_argument(
        "--contrastive",
        type=int,
        default=0,
        metavar="PAIRS",
        help="also try a SetFit-style "
        "contrastive stage on PAIRS label pairs before the head (SetFit) and before the product's "
        "fine-tune; both are compared with the product's fine-tune on validation",
    )
    precision = bsub.add_parser(
        "precision", help="float32, bfloat16 and int8 inference: speed, accuracy, calibration, agreement, queue order"
    )
    precision.add_argument("--data", help=DATA_HELP)
    precision.add_argument(
        "--dataset",
        "--datasets",
        dest="datasets",
        default="ag_news,trec",
        metavar="FOLDER[,FOLDER]",
        help="dataset folders, or names under --data, comma-separated (default: ag_news,trec)",
    )
    precision.add_argument("--labels", type=int, default=1000, help="random annotations the heads learn from (1000)")
    precision.add_argument("--pool", type=int, default=2000, help="pool sample whose queue order is compared (2000)")
    precision.add_argument("--test-size", type=int, default=2000, help="test texts per dataset (2000)")
    errors = bsub.add_parser("label-errors", help="flip a share of labels and measure how well the detector finds them")
    _data_args(errors, "ag_news")
    errors.add_argument("--labels", type=int, default=2000, help="annotations in the simulated project (2000)")
    errors.add_argument("--noise", type=float, default=0.1, help="share of labels flipped (0.1)")
    errors.add_argument(
        "--noise-kind",
        choices=["uniform", "pair"],
        default="uniform",
        help="uniform: to any other class; pair: class c to class c+1 (class-conditional)",
    )
    errors.add_argument("--seeds", type=int, default=3, help="random draws; medians are reported (3)")
    errors.add_argument(
        "--chosen-by",
        choices=["random", "margin"],
        default="random",
        help="how the annotated tasks are drawn: at random, or as the queue would (50 at random, then "
        "25 at a time in margin order): the hard tasks active learning sends people",
    )
    errors.add_argument(
        "--max-prob",
        type=float,
        default=0.1,
        help="flag only labels the calibrated model gives less than this chance (0.1, as HITL_LABEL_ERRORS_MAX_PROB)",
    )
    errors.add_argument("--pool", type=int, default=8000, help="with --chosen-by margin: texts drawn from (8000)")
    errors.add_argument(
        "--fine-tuned",
        action="store_true",
        help="check on a fine-tuned encoder's embeddings "
        "(fine-tuned on the noisy annotations first) instead of the base encoder's",
    )
    drift = bsub.add_parser("drift", help="drift alarms: delay after a mixture or class-prior shift, false alarms")
    _data_args(drift, "ag_news")
    drift.add_argument(
        "--shift-dataset", default="trec", help="texts mixed in after the shift: " + DATASET_HELP.format("trec")
    )
    drift.add_argument("--pool", type=int, default=8000, help="texts read from --dataset's train split (8000)")
    drift.add_argument("--labels", type=int, default=500, help="annotations the served head is fitted on (500)")
    drift.add_argument("--window", type=int, default=500, help="tasks per window (500)")
    drift.add_argument("--mix", type=float, default=0.3, help="share of each shifted window from --shift-dataset (0.3)")
    drift.add_argument("--max-windows", type=int, default=10, help="shifted windows per stream (10)")
    drift.add_argument("--null-windows", type=int, default=1000, help="windows without shift per seed (1000)")
    drift.add_argument("--alpha", type=float, help="false-alarm rate the tests are set for (HITL_DRIFT_ALPHA)")
    drift.add_argument("--seeds", type=int, default=3, help="random draws; medians are reported (3)")


def _add_scale(bsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scale = bsub.add_parser(
        "scale",
        help="a sync's own steps on cached pools of growing size (lookup, rescoring, first and incremental "
        "plan, peak memory), Label Studio aside; growth against the smallest pool",
    )
    scale.add_argument(
        "--sizes", default="100000,300000,1000000", help="pool sizes, smallest first (100000,300000,1000000)"
    )
    scale.add_argument(
        "--label-studio",
        type=int,
        metavar="TASKS",
        help="also import TASKS tasks of --dataset into a real Label Studio on PostgreSQL and time its first "
        "sync and the sync after a head refresh (the encoder embeds every task once: minutes per 100k)",
    )
    scale.add_argument(
        "--label-studio-changes",
        type=int,
        metavar="TASKS",
        help="also import TASKS tasks into a real Label Studio on PostgreSQL and time its side of a sync that "
        "reads only what changed: its count of the unlabeled tasks, and the read of the tasks changed since the "
        "last sync (after annotations, rank writes and an import); minutes per 1M tasks imported",
    )
    scale.add_argument(
        "--label-studio-writes",
        type=int,
        metavar="TASKS",
        help="also import TASKS tasks into a real Label Studio on PostgreSQL and time its bulk prediction writes "
        "(1,000 per call, as a first sync sends them) with its defaults, then with its memory-efficient "
        "prediction import switched on (docs/operations/scaling.md), then every task's prediction with it on; "
        "then the read of the pool's first 20,000 tasks, 500 and 5,000 per page",
    )
    scale.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an admin URL of the PostgreSQL that Label Studio's database is created in (and dropped after)",
    )
    scale.add_argument(
        "--predict",
        type=float,
        default=0,
        metavar="SECONDS",
        help="also start a real `hitl serve` (bundled encoder) and time /predict, one task per request: alone "
        "for SECONDS, then throughout the largest pool's steps; and the server's peak memory per process",
    )
    scale.add_argument(
        "--shared-cache",
        action="store_true",
        help="keep the embedding cache in PostgreSQL (a scratch database on --postgres), as hosts sharing "
        "HITL_DATABASE_URL do, instead of a SQLite file: the lookup from disk is then a fresh host's read",
    )
    _data_args(scale, "ag_news")


def _data_args(parser: argparse.ArgumentParser, default: str = "ag_news") -> None:
    """--data and --dataset, as every benchmark takes them (the full datasets are not in this repository)."""
    parser.add_argument("--data", help=DATA_HELP)
    parser.add_argument("--dataset", default=default, metavar="FOLDER", help=DATASET_HELP.format(default))


def _add_encoders(bsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    encoders = bsub.add_parser(
        "encoders",
        help="another encoder vs the shipped one: the product's head on each, "
        "validation and test accuracy, texts per second",
    )
    _data_args(encoders, "ag_news")
    encoders.add_argument(
        "--alternative", required=True, help="a local transformers model folder, or 'wordllama' (pip install wordllama)"
    )
    encoders.add_argument("--labels", type=int, default=500, help="random annotations per draw (500)")
    encoders.add_argument("--pool", type=int, default=20000, help="train texts read (20000)")
    encoders.add_argument("--validation", type=int, default=1000, help="validation texts carved from train (1000)")
    encoders.add_argument("--test-size", type=int, default=2000, help="test texts (2000)")
    encoders.add_argument("--seeds", type=int, default=3, help="random draws; medians are reported (3)")


def _add_batch_correction(bsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    batch = bsub.add_parser("batch-correction", help="precision and reach of the proposals one correction makes")
    _data_args(batch, "ag_news")
    batch.add_argument("--pool", type=int, default=6000, help="texts read from the train split (6000)")
    batch.add_argument("--labels", type=int, default=200, help="random annotations before the replay (200)")
    batch.add_argument("--steps", type=int, default=150, help="annotations served in queue order (150)")
    batch.add_argument("--max-tasks", type=int, default=50, help="tasks at most per proposal (50)")
    batch.add_argument("--seeds", type=int, default=3, help="random draws; medians are reported (3)")


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Each benchmark's module is imported only when it runs (they pull in torch, Label Studio, ...)."""
    if args.bench_command not in BENCHES:
        raise SystemExit(f"unknown bench {args.bench_command}")
    name = args.bench_command.replace("-", "_")
    module = importlib.import_module(f"backend.tools.bench.{name}")
    return int(getattr(module, f"bench_{name}")(args, settings))
