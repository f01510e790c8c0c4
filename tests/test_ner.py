"""NER end to end on a tiny encoder: annotations → examples → tagger → version → /predict regions."""

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from backend.labeling.examples import Example
from backend.labeling.spans import Span, from_tokens, spans_from_result
from backend.learning.candidates import publish_head
from backend.learning.dataset import build_dataset
from backend.learning.gate import evaluate_spans
from backend.models import uncertainty
from backend.models.persist import load_version
from backend.models.tagger import SpanTagger, Tagged, finetune_tagger, fit_tagger, weakest_words
from backend.server import create_app
from backend.tools.bench.ner import label_studio_tasks
from tests.support.payloads import ls_task, predict_body, setup_body
from tests.test_spans import NER_CONFIG, SPEC, region

PEOPLE = ["anna", "boris", "carla", "dmitri"]
PLACES = ["berlin", "tokyo", "lima", "oslo"]


def _rows():
    rows = []
    for i, person in enumerate(PEOPLE * 3):
        place = PLACES[(i + i // 4) % 4]
        rows.append({"tokens": [person, "flew", "to", place, "today"], "tags": ["B-PER", "O", "O", "B-LOC", "O"]})
        rows.append({"tokens": ["yesterday", place, "welcomed", person], "tags": ["O", "B-LOC", "O", "B-PER"]})
    return rows


def _examples(rows=None):
    return build_dataset(3, label_studio_tasks(rows or _rows(), SPEC), SPEC, max_chars=1000).examples


def test_dataset_reads_spans_keeps_empty_answers_and_audits_changes():
    text = "🎉 anna in berlin"
    prediction = {
        "id": 5,
        "result": [region(text, 2, 6, "LOC")],
        "model_version": "v1-x",
        "score": 0.3,
        "created_at": "2026-11-01T00:00:00Z",
    }
    tasks = [
        {
            "id": 1,
            "data": {"text": text},
            "predictions": [prediction],
            "annotations": [
                {
                    "id": 11,
                    "result": [region(text, 2, 6, "PER"), region(text, 10, 16, "LOC")],
                    "was_cancelled": False,
                    "updated_at": "2026-11-02T00:00:00Z",
                    "created_at": "2026-11-02T00:00:00Z",
                    "parent_prediction": 5,
                }
            ],
        },
        {
            "id": 2,
            "data": {"text": "nothing here"},
            "annotations": [{"id": 12, "result": [], "was_cancelled": False, "updated_at": "2026-11-02T00:00:00Z"}],
        },
        {
            "id": 3,
            "data": {"text": "skipped"},
            "annotations": [{"id": 13, "result": [], "was_cancelled": True, "updated_at": "2026-11-02T00:00:00Z"}],
        },
    ]
    data = build_dataset(3, tasks, SPEC, max_chars=1000)
    assert [ex.task_id for ex in data.examples] == [1, 2]
    assert data.examples[0].spans == (Span(2, 6, "PER"), Span(10, 16, "LOC"))
    assert data.examples[0].labels == ("LOC", "PER")
    assert data.examples[1].spans == ()  # "no entities" is an answer
    assert data.skipped["only cancelled annotations"] == 1
    assert data.corrections[0].changed is True  # the prediction said LOC for "anna"


def test_evaluate_spans_is_exact_match():
    gold = [Example("a b c d", ("PER",), 1, spans=(Span(0, 3, "PER"), Span(4, 5, "LOC")))]
    assert evaluate_spans([[Span(0, 3, "PER"), Span(4, 5, "LOC")]], gold)["f1"] == 1.0
    partial = evaluate_spans([[Span(0, 1, "PER"), Span(4, 5, "ORG")]], gold)  # wrong boundary, wrong type
    assert (partial["precision"], partial["recall"], partial["f1"]) == (0.0, 0.0, 0.0)
    half = evaluate_spans([[Span(0, 3, "PER")]], gold)
    assert (half["precision"], half["recall"]) == (1.0, 0.5)
    assert half["per_type_f1"] == {"LOC": 0.0, "PER": 1.0}


def test_task_uncertainty_is_its_weakest_words():
    sure, unsure = [0.98, 0.01, 0.01], [0.4, 0.35, 0.25]
    tagged = [
        Tagged(None, np.array([sure, sure]), []),
        Tagged(None, np.array([sure, unsure]), []),
        Tagged(None, np.zeros((0, 3)), []),
    ]
    rows = weakest_words(tagged, "margin", 3)
    assert rows[1].tolist() == pytest.approx(unsure)
    scores = uncertainty.queue_key(rows, "margin")
    assert scores[1] < scores[0] <= scores[2] == 1.0


def test_tagger_learns_and_serves_regions_through_predict(settings, predictor):
    examples = _examples()
    tagger = fit_tagger(predictor.encoder(), SPEC, [e.text for e in examples], [e.spans for e in examples])
    f1 = evaluate_spans([t.spans for t in tagger.tag([e.text for e in examples])], examples)["f1"]
    assert f1 >= 0.9  # a linear head memorises a handful of names

    version = publish_head(predictor.registry, "7", SPEC, predictor.encoder(), tagger.head, examples)
    client = create_app(settings, predictor=predictor).test_client()
    assert client.post("/setup", json=setup_body(NER_CONFIG)).json == {"model_version": version}
    texts = [examples[0].text, examples[1].text, ""]
    tasks = [ls_task(i, {"text": t}) for i, t in enumerate(texts)]
    results = client.post("/predict", json=predict_body(tasks, NER_CONFIG)).json["results"]
    interface = LabelInterface(NER_CONFIG)
    assert "error" in results[2] and "result" not in results[2]  # the empty text fails alone
    for item, ex in zip(results[:2], examples, strict=False):
        assert item["model_version"] == version and 0.0 <= item["score"] <= 1.0
        assert set(item["uncertainty"]) == {"least_confidence", "margin", "entropy"}
        assert interface.validate_prediction({"result": item["result"]}, return_errors=True) == []
        assert all(0.0 <= r["score"] <= 1.0 and r["type"] == "labels" for r in item["result"])
        assert [s.key for s in spans_from_result(SPEC, item["result"], ex.text)] == [s.key for s in ex.spans]


def test_full_path_fine_tunes_and_loads_from_its_version(predictor):
    examples = _examples()
    base = predictor.encoder()
    tuned = finetune_tagger(base, SPEC, [e.text for e in examples], [e.spans for e in examples], epochs=1)
    assert tuned.encoder.identity != base.identity
    version = publish_head(predictor.registry, "8", SPEC, tuned.encoder, tuned.head, examples, fine_tuned=True)
    loaded = load_version(
        predictor.registry.version_dir("8", version), predictor.registry.meta("8", version), SPEC, base
    )
    assert isinstance(loaded, SpanTagger) and loaded.encoder is not base  # the tuned encoder, from the version
    text = examples[0].text
    assert loaded.tag([text])[0].spans == tuned.tag([text])[0].spans


def test_wnut_style_sentences_become_label_studio_tasks():
    text, spans = from_tokens(["Empire", "State", "Building", "=", "ESB"], ["B-LOC", "I-LOC", "I-LOC", "O", "B-LOC"])
    assert text == "Empire State Building = ESB"
    assert [(text[s.start : s.end], s.label) for s in spans] == [("Empire State Building", "LOC"), ("ESB", "LOC")]


def test_word_state_cache_serves_repeat_passes_with_the_same_predictions(predictor, tmp_path):
    from backend.models.word_state_cache import WordStateCache

    examples = _examples()
    texts, spans = [e.text for e in examples], [e.spans for e in examples]
    encoder = predictor.encoder()
    cache = WordStateCache(tmp_path, encoder.identity, encoder.dim)
    plain = fit_tagger(encoder, SPEC, texts, spans)
    cold = fit_tagger(encoder, SPEC, texts, spans, cache=cache)
    assert (cache.misses, cache.hits) == (len(set(texts)), len(texts) - len(set(texts)))
    warm = fit_tagger(encoder, SPEC, texts, spans, cache=WordStateCache(tmp_path, encoder.identity, encoder.dim))
    assert warm.cache.misses == 0 and warm.cache.hits == len(texts)  # read back from disk
    expected = [[(s.key, s.score) for s in t.spans] for t in plain.tag(texts)]
    for tagger in (cold, warm):  # the same entities; scores within float16 rounding of the states
        got = [[(s.key, s.score) for s in t.spans] for t in tagger.tag(texts)]
        assert [[k for k, _ in row] for row in got] == [[k for k, _ in row] for row in expected]
        assert all(
            abs(a[1] - b[1]) < 1e-3 for r1, r2 in zip(got, expected, strict=True) for a, b in zip(r1, r2, strict=True)
        )


def test_calibrated_tagger_routes_sure_answers_past_review(settings, predictor):
    from backend.learning.candidates import calibrate_tagger

    examples = _examples()
    tagger = fit_tagger(predictor.encoder(), SPEC, [e.text for e in examples], [e.spans for e in examples])
    extra = calibrate_tagger(tagger, SPEC, examples, settings)
    assert extra["calibration"]["temperature"] == pytest.approx(tagger.head.temperature, abs=1e-4)
    assert extra["calibration"]["heldout_word_ece_after"] <= extra["calibration"]["heldout_word_ece_before"] + 1e-6
    route = extra["routing"]
    assert route["threshold"] is not None and route["heldout_precision"] >= 0.98  # memorised: every answer right
    version = publish_head(predictor.registry, "7", SPEC, predictor.encoder(), tagger.head, examples, extra=extra)
    client = create_app(settings, predictor=predictor).test_client()
    tasks = [ls_task(i, {"text": e.text}) for i, e in enumerate(examples[:4])]
    results = client.post("/predict", json=predict_body(tasks, NER_CONFIG)).json["results"]
    assert all(r["model_version"] == version for r in results)
    assert [r["auto_accept"] for r in results] == [True, True, False, True]  # task 2 is held out: people see it
    assert [r["hitl_reason"].split(":")[0] for r in results] == [
        "Confident",
        "Confident",
        "Held-out check",
        "Confident",
    ]
    assert calibrate_tagger(tagger, SPEC, examples[:5], settings) == {}  # too few held-out answers to judge


def test_ner_without_a_fast_tokenizer_says_so(predictor):
    """transformers 4 still has slow (pure Python) tokenizers without offsets; 5 has none, so a
    stand-in with ``is_fast = False`` plays one here."""
    from backend.models.tagger import split_words

    class SlowTokenizer:
        is_fast = False

    encoder = predictor.encoder()
    slow = type(encoder).__new__(type(encoder))
    slow.__dict__.update(encoder.__dict__, tokenizer=SlowTokenizer())
    with pytest.raises(ValueError, match="fast tokenizer"):
        split_words(slow, ["Anna lives in Rome"])
