"""Bring your own model (``backend/plugin.py``): a plug-in is fitted, judged, calibrated, published,
served and routed like the bundled model, and each way it can fail stays with its candidate or
its task."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from backend.ids import JobKind
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import calibrate, fit_candidate, publish_candidate
from backend.learning.gate import reported
from backend.models.plugin_model import PluginClassifier, fit_plugin
from backend.plugin import PluginError, load_plugin_class
from backend.server import create_app
from backend.serving.predictor import Predictor, load_serving
from backend.settings import Settings
from backend.stores.registry import Registry
from tests.support.data import load_jsonl
from tests.support.payloads import AG_CONFIG, predict_body

SPEC = parse_label_config(AG_CONFIG)
GOOD = "tests.support.plugins:WordCentroids"


def _examples(n: int, offset: int = 0) -> list[Example]:
    rows = load_jsonl("ag_news", "train", offset + n)[offset:]
    return [Example(r["text"], (r["label"],), task_id=offset + i + 1) for i, r in enumerate(rows)]


@pytest.fixture
def plugin_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"model": GOOD, "model_timeout_s": 2.0, "routing_target_precision": 0.9})


def _publish(settings: Settings, registry: Registry, name: str = GOOD) -> tuple[str, PluginClassifier]:
    train, held = _examples(300), _examples(120, offset=300)
    candidate = fit_candidate(SPEC, JobKind.HEAD, train, held, None, settings, plugin=name)  # type: ignore[arg-type]
    record = calibrate(candidate, SPEC, settings)
    extra = {"metrics": reported(candidate.metrics), **record}  # as the retrain records it
    version = publish_candidate(registry, "7", SPEC, candidate, train + held, extra, {}, None)
    return version, candidate.model


def test_a_plugin_class_is_named_by_the_operator_and_checked():
    assert load_plugin_class(GOOD).__name__ == "WordCentroids"
    for name, said in (
        ("tests.support.plugins.WordCentroids", "is not package.module:Class"),
        ("tests.support.nowhere:Model", "cannot import"),
        ("tests.support.plugins:Missing", "has no class Missing"),
        ("tests.support.plugins:NotAPlugin", "lacks predict_proba, save, load"),
        ("os:system", "os has no class system"),  # a function is never called as a model
    ):
        with pytest.raises(PluginError, match=said):
            load_plugin_class(name)


def test_a_plugin_is_fitted_judged_calibrated_and_published_like_the_bundled_model(plugin_settings):
    registry = Registry.from_settings(plugin_settings)
    version, model = _publish(plugin_settings, registry)
    meta = registry.meta("7", version)
    assert meta["plugin"]["name"] == GOOD and meta["training"]["kind"] == "plugin"
    assert meta["metrics"]["n"] == 120 and meta["metrics"]["primary"] > 0.5  # better than chance on four classes
    temperature = meta["plugin"]["temperature"]
    assert temperature == model.temperature != 1.0  # fitted on the held-out annotations
    calibration = meta["calibration"]
    assert calibration["heldout_ece_after"] <= calibration["heldout_ece_before"]
    assert "routing" in meta and "preselect" in meta
    loaded = load_serving(registry, "7", SPEC, None)
    assert isinstance(loaded.model, PluginClassifier) and loaded.model.temperature == temperature
    texts = [ex.text for ex in _examples(20, offset=500)]
    assert np.allclose(loaded.model.predict_proba(texts), model.predict_proba(texts))


def test_predict_serves_a_plugin_version_with_calibrated_scores(plugin_settings):
    predictor = Predictor(plugin_settings)
    predictor.start(background=False)
    _, model = _publish(plugin_settings, predictor.registry)
    client = create_app(plugin_settings, predictor=predictor).test_client()
    texts = [ex.text for ex in _examples(8, offset=500)]
    tasks = [{"id": 1000 + i, "data": {"text": t}} for i, t in enumerate(texts)]
    answer = client.post("/predict", json=predict_body(tasks))
    assert answer.status_code == 200
    items = answer.json["results"]
    expected = model.predict_proba(texts).max(axis=1)
    assert [round(item["score"], 4) for item in items] == [round(float(p), 4) for p in expected]
    assert all(item["hitl_answer"] for item in items)


def test_a_version_of_a_plugin_the_operator_did_not_configure_is_not_loaded(plugin_settings, tmp_path):
    _publish(plugin_settings, Registry.from_settings(plugin_settings))
    elsewhere = Registry(plugin_settings.registry_dir)  # no HITL_MODEL here
    loaded = load_serving(elsewhere, "7", SPEC, None)
    assert loaded.model is None and "not configured to run" in (loaded.error or "")


def test_each_fit_fault_refuses_the_candidate_with_its_reason(plugin_settings):
    train, held = _examples(60), _examples(20, offset=60)
    for name, said in (
        ("tests.support.plugins:FitRaises", "fit raised ValueError: the model's own bug"),
        ("tests.support.plugins:FitHangs", "fit ran past HITL_MODEL_TIMEOUT_S"),
        ("tests.support.plugins:WrongShape", r"shape \(20, 3\), expected \(20, 4\)"),
        ("tests.support.plugins:GivesNaN", "NaN"),
    ):
        started = time.monotonic()
        with pytest.raises(PluginError, match=said):
            fit_candidate(SPEC, JobKind.HEAD, train, held, None, plugin_settings, plugin=name)  # type: ignore[arg-type]
        assert time.monotonic() - started < 10


def test_a_task_the_plugin_cannot_answer_fails_alone(plugin_settings):
    settings = plugin_settings.model_copy(update={"model": "tests.support.plugins:FailsOnBoom"})
    predictor = Predictor(settings)
    predictor.start(background=False)
    _publish(settings, predictor.registry, "tests.support.plugins:FailsOnBoom")
    client = create_app(settings, predictor=predictor).test_client()
    tasks = [
        {"id": 1, "data": {"text": "stocks fell"}},
        {"id": 2, "data": {"text": "boom"}},
        {"id": 3, "data": {"text": "a goal"}},
    ]
    answer = client.post("/predict", json=predict_body(tasks))
    assert answer.status_code == 200
    first, bad, third = answer.json["results"]
    assert "cannot read this one" in bad["error"] and "result" not in bad
    assert first["score"] > 0 and third["score"] > 0


def _fit_example(name: str, n: int = 200) -> PluginClassifier:
    """An example plug-in fitted on the first ``n`` AG News samples, as a retrain would fit it."""
    texts, labels = zip(*[(e.text, e.labels[0]) for e in _examples(n)], strict=True)
    return fit_plugin(name, SPEC.labels, texts, labels, 60)


def test_the_scikit_learn_example_round_trips_without_pickle(tmp_path):
    plugin = _fit_example("examples.tfidf_logreg.model:TfidfLogReg")
    texts = [ex.text for ex in _examples(30, offset=300)]
    plugin.plugin.save(tmp_path)
    again = type(plugin.plugin).load(tmp_path, SPEC.labels)
    assert np.allclose(again.predict_proba(texts), plugin.plugin.predict_proba(texts))
    right = np.mean(
        [
            SPEC.labels[int(p.argmax())] == ex.labels[0]
            for p, ex in zip(again.predict_proba(texts), _examples(30, offset=300), strict=True)
        ]
    )
    assert right > 0.5
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in tmp_path.iterdir())


def test_a_label_studio_ml_backend_class_runs_as_a_black_box(tmp_path):
    plugin = _fit_example("examples.ls_ml_backend.model:NaiveBayesPlugin")
    texts = [ex.text for ex in _examples(30, offset=300)]
    probs = plugin.predict_proba(texts)
    backend = plugin.plugin.backend.predict([{"id": 0, "data": {"text": t}} for t in texts])["predictions"]
    for row, prediction in zip(probs, backend, strict=True):  # its answer on top, with its score (at least 1/k)
        assert SPEC.labels[int(row.argmax())] == prediction["result"][0]["value"]["choices"][0]
        assert row.max() == pytest.approx(max(prediction["score"], 1 / len(SPEC.labels)))
    plugin.plugin.save(tmp_path)
    again = type(plugin.plugin).load(tmp_path, SPEC.labels)  # refitted on the stored training tasks
    assert np.allclose(again.predict_proba(texts), plugin.plugin.predict_proba(texts))


def test_the_bundled_encoder_written_as_a_plugin(tmp_path, tiny_encoder_dir, monkeypatch):
    from backend.settings import get_settings

    monkeypatch.setenv("HITL_MODEL_NAME", str(tiny_encoder_dir))
    get_settings.cache_clear()
    try:
        texts, labels = zip(*[(e.text, e.labels[0]) for e in _examples(80)], strict=True)
        plugin = fit_plugin("examples.bundled_encoder.model:EncoderWithHead", SPEC.labels, texts, labels, 60)
        assert plugin.embed(texts[:3]).shape[0] == 3  # it has vectors of its own
        plugin.plugin.save(tmp_path)
        again = type(plugin.plugin).load(tmp_path, SPEC.labels)
        assert np.allclose(again.predict_proba(texts[:10]), plugin.plugin.predict_proba(texts[:10]), atol=1e-6)
    finally:
        get_settings.cache_clear()


def test_the_examples_on_the_docs_page_run_as_written(tmp_path):
    import re
    import types

    page = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2
    texts, labels = zip(*[(e.text, e.labels[0]) for e in _examples(150)], strict=True)
    for i, code in enumerate(blocks):
        module = types.ModuleType(f"docs_example_{i}")
        exec(compile(code, f"docs/plugins.md block {i}", "exec"), module.__dict__)
        plugin = module.MyModel(SPEC.labels)
        plugin.fit(list(texts), list(labels))
        probs = plugin.predict_proba(list(texts[:5]))
        assert probs.shape == (5, 4) and np.allclose(probs.sum(axis=1), 1)
        folder = tmp_path / str(i)
        folder.mkdir()
        plugin.save(folder)
        assert np.allclose(type(plugin).load(folder, SPEC.labels).predict_proba(list(texts[:5])), probs)
