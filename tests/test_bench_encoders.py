"""The encoder comparison: the product's head recipe on any embeddings, and a clear refusal of a bad name."""

from __future__ import annotations

import numpy as np
import pytest

from backend.labeling.examples import Example
from backend.settings import Settings
from backend.tools.bench.encoders import alternative_embed, head_accuracy

pytestmark = pytest.mark.tools  # a replay or benchmark: ./scripts/test.sh --quick leaves it out


def test_better_separated_embeddings_score_higher():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 300)
    centres = rng.normal(size=(3, 16))
    rows = [Example(f"text {i}", (str(c),), i) for i, c in enumerate(y)]
    labeled, evaluate = list(range(0, 900, 3)), np.arange(1, 900, 3)
    scores = []
    for spread in (3.0, 0.3):
        x = (centres[y] + spread * rng.normal(size=(900, 16))).astype(np.float32)
        scores.append(head_accuracy(x, y, labeled, rows, 0.15, [(x[evaluate], y[evaluate])])[0])
    assert scores[1] > 0.95 and scores[0] < scores[1] - 0.2


def test_an_unknown_alternative_says_what_it_takes(tmp_path):
    with pytest.raises(SystemExit, match="neither 'wordllama' nor a local model folder"):
        alternative_embed(str(tmp_path / "missing"), Settings(data_dir=tmp_path))
