"""int8 inference: derived from the float weights, cached apart from float, chosen per version on
the held-out annotations (and float when they do not support it), and served as chosen."""

from __future__ import annotations

import numpy as np
import pytest

from backend.ids import JobKind
from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning import candidates
from backend.learning.candidates import choose_precision, fit_candidate, publish_candidate
from backend.learning.dataset import split
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import load_encoder
from backend.serving.predictor import load_serving
from backend.stores.registry import Registry
from tests.support.data import load_jsonl
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)


@pytest.fixture(scope="module")
def examples():
    rows = load_jsonl("ag_news", "train", 240)
    return [Example(r["text"], (r["label"],), i) for i, r in enumerate(rows)]


@pytest.fixture
def encoder(tiny_encoder_dir):
    return load_encoder(str(tiny_encoder_dir), precision="float32")


def test_the_int8_sibling_is_derived_once_and_cached_apart(encoder, tmp_path):
    q = encoder.quantized()
    assert q is encoder.quantized() and q.quantized() is q  # one int8 copy per encoder
    assert q.precision == "int8" and q.float_weights is encoder and q.identity == f"{encoder.identity}-int8"
    assert any("Quantized" in type(m).__name__ or "quantized" in type(m).__module__ for m in q.model.modules())
    texts = ["stocks rallied on Friday", "the match ended in a draw"]
    float_cache, int8_cache = EmbeddingCache(tmp_path, encoder), EmbeddingCache(tmp_path, q)
    assert float_cache.path != int8_cache.path  # float and int8 embeddings never mix
    x_float, x_int8 = float_cache.embed(texts), int8_cache.embed(texts)
    assert x_float.shape == x_int8.shape and not np.allclose(x_float, x_int8)
    assert np.allclose(EmbeddingCache(tmp_path, q).embed(texts), x_int8)  # read back from its own file


def _candidate(encoder, examples, tmp_path, settings):
    train, held = split(examples, 0.4)
    return fit_candidate(SPEC, JobKind.HEAD, train, held, EmbeddingCache(tmp_path / "cache", encoder), settings)


def test_int8_serves_only_where_the_held_out_annotations_support_it(encoder, examples, settings, tmp_path, monkeypatch):
    settings = settings.model_copy(update={"gate_min_eval": 20})
    candidate = _candidate(encoder, examples, tmp_path, settings)
    assert len(candidate.held) >= 20

    same, record = choose_precision(candidate, SPEC, settings.model_copy(update={"precision": "float32"}))
    assert same is candidate and record == {}  # float32 asked for: never int8

    thin, record = choose_precision(candidate, SPEC, settings.model_copy(update={"gate_min_eval": 10_000}))
    assert thin is candidate and record["serving"] == "float" and "held-out annotations" in record["reason"]

    monkeypatch.setattr(candidates, "INT8_ECE_TOLERANCE", 10.0)
    chosen, record = choose_precision(candidate, SPEC, settings.model_copy(update={"int8_margin": 1.0}))
    assert record["serving"] == "int8" and chosen.encoder.precision == "int8"
    assert 0 <= record["agreement"] <= 1 and record["heldout"] == len(candidate.held)
    assert chosen.metrics["primary"] == record["int8_primary"]
    assert candidate.metrics["primary"] == record["float_primary"]

    monkeypatch.setattr(candidates, "INT8_ECE_TOLERANCE", -1.0)  # calibration must hold too
    kept, record = choose_precision(candidate, SPEC, settings.model_copy(update={"int8_margin": 1.0}))
    assert kept is candidate and record["serving"] == "float"


def test_an_int8_version_is_served_on_the_quantized_encoder(encoder, examples, settings, tmp_path, monkeypatch):
    settings = settings.model_copy(update={"gate_min_eval": 20, "int8_margin": 1.0})
    monkeypatch.setattr(candidates, "INT8_ECE_TOLERANCE", 10.0)
    chosen, record = choose_precision(_candidate(encoder, examples, tmp_path, settings), SPEC, settings)
    registry = Registry(tmp_path / "registry")
    version = publish_candidate(registry, 4, SPEC, chosen, examples, {"precision": record}, {}, None)
    meta = registry.meta(4, version)
    assert meta["encoder"]["precision"] == "int8" and meta["encoder"]["identity"] == encoder.identity
    assert not (registry.version_dir(4, version) / "encoder").exists()  # derived at load time, nothing stored
    served = load_serving(registry, 4, SPEC, encoder)
    assert served.model.encoder is encoder.quantized()
    texts = [ex.text for ex in chosen.held[:5]]
    assert np.allclose(served.model.predict_proba(texts), chosen.model.predict_proba(texts), atol=1e-6)
