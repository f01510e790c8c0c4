"""The label-error benchmark draws annotated tasks as the queue would: hard ones after a random start."""

from __future__ import annotations

import numpy as np
import pytest

from backend.models.head import LinearHead
from backend.tools.bench.label_errors import chosen_by_margin

pytestmark = pytest.mark.tools  # a replay or benchmark: ./scripts/test.sh --quick leaves it out


def test_tasks_chosen_by_margin_are_the_hard_ones():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 0.8
    gold = np.repeat(np.arange(3), 400)
    x = (centres[gold] + rng.normal(size=(len(gold), 8))).astype(np.float32)
    picked = chosen_by_margin(x, gold, 150, np.random.default_rng(1))
    assert len(picked) == 150 and len(set(picked.tolist())) == 150
    probs = np.sort(LinearHead.fit(x, gold, 3, multi_label=False).proba(x), axis=1)
    margin = probs[:, -1] - probs[:, -2]
    # after the 50 drawn at random, the queue's picks sit near the class boundaries
    assert np.median(margin[picked[50:]]) < 0.5 * np.median(margin)
