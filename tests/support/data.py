"""The datasets the tests read: small samples of AG News, TREC-6 and WNUT-17 kept in this repository
(tests/fixtures/data; its README says where each comes from and how it was sampled).

The tests never need the full datasets (``../shared/data``, ``HITL_SHARED_DATA``): those are for the
benchmarks and replays (``hitl bench``, ``hitl simulate --dataset FOLDER``)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def data_dir() -> Path:
    """The folder of the test samples, laid out as the full data is (``trec/train.jsonl``, ...)."""
    return FIXTURES


def load_jsonl(dataset: str, split: str, limit: int | None = None) -> list[dict]:
    """The first ``limit`` rows of a sample (all of them without a limit). Asking for more rows than
    the sample holds is an error: a test must not run on fewer rows than it was written for."""
    path = FIXTURES / dataset / f"{split}.jsonl"
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    if limit is not None and len(rows) < limit:
        raise ValueError(
            f"{path} holds {len(rows)} rows and the test reads {limit}: make the sample larger in "
            "tests/fixtures/make_samples.py and regenerate it (see tests/fixtures/data/README.md)"
        )
    return rows
