"""The second opinion once a fine-tuned encoder serves: the last head on the base encoder
(issue 16 item 1, "the fine-tuned model and the head disagree")."""

import numpy as np

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.monitoring.second_opinion import SecondOpinion, base_head_opinion, disagreements
from tests.support.payloads import AG_CONFIG, MULTI_CONFIG


def test_the_newest_base_encoder_head_answers_and_an_unreadable_version_is_skipped(predictor):
    spec, encoder, registry = parse_label_config(AG_CONFIG), predictor.encoder(), predictor.registry
    texts = ["the striker scored twice", "stocks fell sharply", "parliament voted today", "a new chip design"]
    examples = [Example(t, (label,), i) for i, (t, label) in enumerate(zip(texts * 3, spec.labels * 3, strict=True))]
    older = publish_head(registry, "7", spec, encoder, fit_head(encoder, spec, examples[:8]), examples[:8])
    newer = publish_head(registry, "7", spec, encoder, fit_head(encoder, spec, examples), examples)
    x = encoder.embed(texts)
    opinion = base_head_opinion(registry, 7, spec, encoder, x)
    assert opinion is not None and opinion.version == newer and opinion.labels.shape == (4,)
    (registry.version_dir("7", newer) / "meta.json").write_text("{ not json")  # a half-written version
    assert base_head_opinion(registry, 7, spec, encoder, x).version == older
    assert base_head_opinion(registry, 7, parse_label_config(MULTI_CONFIG), encoder, x) is None  # single-label only


def test_disagreements_compare_the_top_labels():
    served = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    assert disagreements(served, SecondOpinion("v1", np.array([0, 2, 2]))).tolist() == [False, True, False]
    assert disagreements(served, None).tolist() == [False, False, False]
