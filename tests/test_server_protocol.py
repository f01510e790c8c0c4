"""The Flask app driven with Label Studio-shaped payloads (tests/support/payloads.py says where from)."""

import base64
import json

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface
from pydantic import SecretStr

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.labeling.spec import spec_to_dict
from backend.learning.candidates import fit_head, publish_head
from backend.server import create_app
from backend.serving.predictor import Predictor
from backend.serving.reasons import Why, kind
from backend.serving.routing import is_audit_sample, is_heldout
from backend.stores.registry import COLD_START
from tests.support.payloads import (
    AG_CONFIG,
    MULTI_CONFIG,
    PROJECT_UID,
    annotation_event,
    ls_task,
    predict_body,
    setup_body,
)

TEXTS = [
    "The match ended in a draw",
    "Stocks fell sharply today",
    "New chip doubles speed",
    "Talks in Geneva",
]
LABELS = ["Sports", "Business", "Sci/Tech", "World"]


def _train(predictor: Predictor, config: str = AG_CONFIG, project: str = "7") -> str:
    spec = parse_label_config(config)
    examples = [Example(t, (label,), i) for i, (t, label) in enumerate(zip(TEXTS * 5, LABELS * 5, strict=True))]
    encoder = predictor.encoder()
    head = fit_head(encoder, spec, examples)
    return publish_head(predictor.registry, project, spec, encoder, head, examples)


@pytest.fixture
def client(settings, predictor):
    return create_app(settings, predictor=predictor).test_client()


def test_health_and_setup_answer_in_cold_start(client):
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "UP"
    setup = client.post("/setup", json=setup_body())
    assert setup.status_code == 200
    assert setup.json == {"model_version": COLD_START}


def test_cold_start_returns_no_pre_annotation(client):
    tasks = [ls_task(i, {"text": t}) for i, t in enumerate(TEXTS)]
    response = client.post("/predict", json=predict_body(tasks))
    assert response.status_code == 200
    results = response.json["results"]
    assert len(results) == len(tasks)
    assert all(
        r
        == {
            "result": [],
            "score": 0.0,
            "model_version": COLD_START,
            "hitl_reason": "Needs review: no model has been trained yet, so every task goes to a person.",
            "hitl_version": COLD_START,  # which registry version answered: none yet
        }
        for r in results
    )


def test_trained_version_serves_valid_predictions_with_scores(client, predictor):
    version = _train(predictor)
    assert client.post("/setup", json=setup_body()).json == {"model_version": version}
    tasks = [ls_task(i, {"text": t}) for i, t in enumerate(TEXTS)]
    results = client.post("/predict", json=predict_body(tasks)).json["results"]
    interface = LabelInterface(AG_CONFIG)
    for item in results:
        assert item["model_version"] == version
        assert 0.0 <= item["score"] <= 1.0
        assert set(item["uncertainty"]) == {"least_confidence", "margin", "entropy"}
        # the score is the calibrated probability of the label shown (least confidence is 1 - max p, rescaled)
        # (a whole percent: what the labeling page's header reads out, serving/presentation.py)
        assert item["score"] == pytest.approx(1 - item["uncertainty"]["least_confidence"] * 3 / 4, abs=1e-5)
        assert len(item["hitl_answer"]) == 1  # the model's answer for API clients, shown or not
        if item["hitl_presentation"] == "blind":  # a held-out task: its label measures the model
            assert item["result"] == [] and item["hitl_header"].startswith("Blind check: ")
            continue
        assert len(item["result"]) == 1 and item["hitl_presentation"] == "pre-selected"  # (HITL_PRESELECT_PRECISION=0)
        assert (
            item["hitl_header"].startswith("Pre-filled: ") and f"{round(item['score'] * 100)}%" in item["hitl_header"]
        )
        assert interface.validate_prediction({"result": item["result"]}, return_errors=True) == []


def test_multilabel_predictions_validate(settings, predictor):
    version = _train(predictor, MULTI_CONFIG)
    client = create_app(settings, predictor=predictor).test_client()
    tasks = [ls_task(i, {"text": t}) for i, t in enumerate(TEXTS)]
    results = client.post("/predict", json=predict_body(tasks, MULTI_CONFIG)).json["results"]
    interface = LabelInterface(MULTI_CONFIG)
    assert all(r["model_version"] == version for r in results)
    for item in results:
        assert interface.validate_prediction({"result": item["result"]}, return_errors=True) == []
        assert set(item["uncertainty"]) == {"multilabel"}


def test_new_version_is_served_without_restart(client, predictor):
    first = _train(predictor)
    body = predict_body([ls_task(1, {"text": TEXTS[0]})])
    assert client.post("/predict", json=body).json["results"][0]["model_version"] == first
    second = _train(predictor)
    assert client.post("/predict", json=body).json["results"][0]["model_version"] == second
    assert client.post("/setup", json=setup_body()).json["model_version"] == second


def test_version_for_other_labels_is_not_served(client, predictor):
    _train(predictor)  # trained on AG_CONFIG's labels
    other = AG_CONFIG.replace('<Choice value="World"/>', '<Choice value="Politics"/>')
    assert client.post("/setup", json=setup_body(other)).json == {"model_version": COLD_START}
    item = client.post("/predict", json=predict_body([ls_task(1, {"text": "x y"})], other)).json["results"][0]
    assert item["result"] == [] and item["model_version"] == COLD_START


def test_bad_tasks_fail_alone_and_keep_positions(client, predictor):
    version = _train(predictor)
    tasks = [
        ls_task(1, {"text": TEXTS[0]}),
        ls_task(2, {"body": "wrong key"}),
        ls_task(3, {"text": 12345}),
        ls_task(4, {"text": "   "}),
        "not a task",
        ls_task(6, {"text": "word " * 200_000}),  # ~1 MB of text: truncated, still served
        ls_task(7, {"text": TEXTS[1]}),
    ]
    response = client.post("/predict", json=predict_body(tasks))
    assert response.status_code == 200
    results = response.json["results"]
    assert len(results) == len(tasks)
    served = [i for i, r in enumerate(results) if "result" in r]
    assert served == [0, 5, 6]
    assert all(results[i]["model_version"] == version for i in served)
    assert "no key 'text'" in results[1]["error"] and "task 2" in results[1]["error"]
    assert "must be a string" in results[2]["error"]
    assert "is empty" in results[3]["error"]
    assert "JSON object" in results[4]["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "must be JSON"),
        ({"json": [1, 2]}, 400, "JSON object"),
        ({"json": {"project": PROJECT_UID, "label_config": AG_CONFIG}}, 400, "'tasks' must be a list"),
        ({"json": {"tasks": [], "label_config": AG_CONFIG}}, 400, "'project' is missing"),
        ({"json": {"tasks": [], "project": PROJECT_UID}}, 400, "'label_config' is missing"),
        ({"json": predict_body([], "<View><Text name='t' value='$t'/></View>")}, 422, "no <Choices> or <Labels>"),
        (
            {
                "json": predict_body(
                    [],
                    '<View><Text name="t" value="$t"/><Rating name="r" toName="t"/></View>',
                )
            },
            422,
            '<Rating name="r">',
        ),
        ({"json": {"tasks": [], "project": "../../x", "label_config": AG_CONFIG}}, 400, "project must look"),
    ],
)
def test_malformed_predict_requests_get_4xx_with_message(client, kwargs, status, message):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status
    assert message in response.json["error"]


def test_limits_on_batch_and_body_size(settings, predictor):
    small = settings.model_copy(update={"max_tasks_per_request": 3, "max_request_bytes": 4096})
    client = create_app(small, predictor=predictor).test_client()
    too_many = client.post("/predict", json=predict_body([ls_task(i, {"text": "a"}) for i in range(4)]))
    assert too_many.status_code == 400 and "limit is 3" in too_many.json["error"]
    too_big = client.post("/predict", json=predict_body([ls_task(1, {"text": "a" * 10_000})]))
    assert too_big.status_code == 413 and "error" in too_big.json


def test_predict_waits_then_answers_503_when_the_encoder_is_missing(tmp_path, settings):
    broken = settings.model_copy(update={"model_name": str(tmp_path / "no-such-model"), "model_wait_s": 5})
    predictor = Predictor(broken)
    predictor.start(background=False)
    client = create_app(broken, predictor=predictor).test_client()
    assert client.get("/health").json["encoder_ready"] is False
    assert "no-such-model" not in client.get("/health").json["encoder_error"]  # open to anyone: no paths
    assert "no-such-model" in client.get("/ready").json["encoder"]
    # cold start needs no encoder, so it still serves
    assert client.post("/predict", json=predict_body([ls_task(1, {"text": "a"})])).status_code == 200
    spec = spec_to_dict(parse_label_config(AG_CONFIG))
    predictor.registry.publish("7", lambda folder: {"spec": spec, "encoder": {"source": "base"}})
    response = client.post("/predict", json=predict_body([ls_task(1, {"text": "a"})]))
    assert response.status_code == 503 and "could not load encoder" in response.json["error"]


def test_setup_does_not_wait_for_the_encoder(settings):
    predictor = Predictor(settings)  # never started: the encoder is not loaded
    client = create_app(settings, predictor=predictor).test_client()
    assert client.get("/health").json["encoder_ready"] is False
    assert client.post("/setup", json=setup_body()).json == {"model_version": COLD_START}


def test_basic_auth_guards_everything_but_health(settings, predictor):
    guarded = settings.model_copy(update={"basic_auth_user": "ls", "basic_auth_password": SecretStr("s3cret")})
    client = create_app(guarded, predictor=predictor).test_client()
    good = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ls:wrong").decode()}
    assert client.get("/health").status_code == 200
    calls = [
        ("post", "/setup", setup_body()),
        ("post", "/predict", predict_body([ls_task(1, {"text": "a"})])),
        ("post", "/webhook", annotation_event()),
        ("post", "/train", {"project": PROJECT_UID}),
        ("post", "/validate", {"config": AG_CONFIG}),
        ("get", "/versions", None),
    ]
    for method, path, body in calls:
        for headers in ({}, bad):
            response = getattr(client, method)(path, json=body, headers=headers)
            assert response.status_code == 401, path
            assert "WWW-Authenticate" in response.headers
        assert getattr(client, method)(path, json=body, headers=good).status_code == 200, path


def test_webhook_accepts_events_and_rejects_malformed(client):
    ok = client.post("/webhook", json=annotation_event())
    assert ok.status_code == 200 and ok.json["action"] == "ANNOTATION_CREATED"
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 7}}).status_code == 200
    for body, message in [
        ({"project": {"id": 7}}, "'action'"),
        ({"action": "ANNOTATION_CREATED"}, "no project id"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": "seven"}}, "must be an integer"),
    ]:
        response = client.post("/webhook", json=body)
        assert response.status_code == 400 and message in response.json["error"]
    assert client.post("/webhook", data="[]", content_type="application/json").status_code == 400


def test_validate_and_versions(client, predictor):
    assert client.post("/validate", json={"config": AG_CONFIG}).json["labels"] == list(
        parse_label_config(AG_CONFIG).labels
    )
    assert client.post("/validate", json={"config": "<View/>"}).status_code == 422
    version = _train(predictor)
    assert client.get("/versions?project=" + PROJECT_UID).json == {"versions": [version]}
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json


def test_scores_rank_uncertain_tasks_first(client, predictor):
    _train(predictor)
    tasks = [ls_task(i, {"text": t}) for i, t in enumerate(TEXTS * 2)]
    results = client.post("/predict", json=predict_body(tasks)).json["results"]
    margins = np.array([r["uncertainty"]["margin"] for r in results])
    scores = np.array([r["score"] for r in results])
    assert list(np.argsort(scores, kind="stable")) == list(np.argsort(-margins, kind="stable"))
    assert json.dumps(results)  # plain JSON, nothing numpy-typed leaks


def _head(predictor):
    """A head fitted on the test texts: (spec, examples, encoder, head, a /predict body for them)."""
    spec = parse_label_config(AG_CONFIG)
    examples = [Example(t, (label,), i) for i, (t, label) in enumerate(zip(TEXTS * 5, LABELS * 5, strict=True))]
    encoder = predictor.encoder()
    body = predict_body([ls_task(i, {"text": t}) for i, t in enumerate(TEXTS)])
    return spec, examples, encoder, fit_head(encoder, spec, examples), body


def test_auto_accept_follows_the_versions_routing_threshold(client, predictor):
    spec, examples, encoder, head, body = _head(predictor)
    body = predict_body([ls_task(i, {"text": TEXTS[i % len(TEXTS)]}) for i in range(40)])
    settings = predictor.settings
    held = {i for i in range(40) if is_heldout(i, settings.holdout_fraction)}
    audit = {i for i in range(40) if is_audit_sample(i, settings.audit_share)} - held
    assert held and audit  # ids 2, 4, 7, 15, 20, 25, 29 are held out; 11, 28, 32, 35, 38 audit samples at 5 %
    for threshold, expected in [(0.0, True), (1.01, False)]:
        publish_head(
            predictor.registry, "7", spec, encoder, head, examples, extra={"routing": {"threshold": threshold}}
        )
        answers = client.post("/predict", json=body).json["results"]
        assert [r["auto_accept"] for r in answers] == [expected and i not in held | audit for i in range(40)]
        kinds = [kind(r["hitl_reason"]) for r in answers]
        assert kinds == [
            Why.HELDOUT if i in held else (Why.AUDIT if i in audit else Why.CONFIDENT) if expected else Why.REVIEW
            for i in range(40)
        ]
    publish_head(predictor.registry, "7", spec, encoder, head, examples)  # no routing: no flag
    answers = client.post("/predict", json=body).json["results"]
    assert all("auto_accept" not in r for r in answers)
    assert all(
        "no prediction of this version skips review yet" in r["hitl_reason"]
        for i, r in enumerate(answers)
        if i not in held
    )


def test_each_prediction_says_why_a_person_should_or_need_not_look(client, predictor):
    spec, examples, encoder, head, _ = _head(predictor)
    publish_head(predictor.registry, "7", spec, encoder, head, examples, extra={"routing": {"threshold": 0.5}})
    body = predict_body([ls_task(i, {"text": TEXTS[i % len(TEXTS)]}) for i in range(40)] + [{"data": {"text": "x"}}])
    answers = client.post("/predict", json=body).json["results"]
    settings, seen = predictor.settings, set()
    for i, r in enumerate(answers):
        confident = r["score"] >= 0.5
        held = i < 40 and is_heldout(i, settings.holdout_fraction)
        sampled = i < 40 and not held and is_audit_sample(i, settings.audit_share)
        assert r["auto_accept"] == (confident and not held and not sampled)
        said = r["hitl_reason"]
        if held:
            seen.add("held out")
            assert said.startswith("Held-out check: a random task, never trained on")
        elif not confident:
            seen.add("unsure")
            assert said.startswith("Needs review: the model is unsure") and "below the 50%" in said
        elif sampled:
            seen.add("audit")
            assert said.startswith("Audit sample: a random ") and r["result"] == []  # blind
        else:  # the words stay true: the confidence shown is at or above the threshold shown
            seen.add("confident")
            assert said.startswith(f"Confident: the model is confident ({int(100 * r['score'])}%, at or above the 50%")
    assert seen == {"held out", "unsure", "audit", "confident"}, seen  # every branch was exercised
    assert answers[-1]["auto_accept"] == (answers[-1]["score"] >= 0.5)  # a task without an id: never sampled


def test_predict_routes_with_the_audit_share_the_sync_set_and_says_when_auto_accept_is_off(client, predictor):
    spec, examples, encoder, head, _ = _head(predictor)
    version = publish_head(
        predictor.registry, "7", spec, encoder, head, examples, extra={"routing": {"threshold": 0.0}}
    )
    body = predict_body([ls_task(i, {"text": TEXTS[i % len(TEXTS)]}) for i in range(40)])
    held = {i for i in range(40) if is_heldout(i, predictor.settings.holdout_fraction)}

    def sampled() -> set[int]:
        answers = client.post("/predict", json=body).json["results"]
        return {i for i, r in enumerate(answers) if kind(r["hitl_reason"]) == Why.AUDIT}

    assert sampled() == {i for i in range(40) if is_audit_sample(i, 0.05)} - held
    predictor.registry.set_audit_share("7", 0.10, "drift alarm: twice HITL_AUDIT_SHARE")  # as the sync does
    doubled = sampled()
    assert doubled == {i for i in range(40) if is_audit_sample(i, 0.10)} - held and len(doubled) > 5
    served = client.post("/predict", json=body).json["results"][0]["model_version"]
    predictor.registry.suspend_routing("7", served, "humans changed 8 of 40")
    answers = client.post("/predict", json=body).json["results"]
    assert all(
        "auto-accept is switched off for this version" in r["hitl_reason"]
        for i, r in enumerate(answers)
        if i not in held
    )
    assert predictor.registry.current("7") == version


def test_a_version_whose_files_cannot_be_read_is_skipped_and_the_previous_keeps_serving(client, predictor):
    first = _train(predictor)
    body = predict_body([ls_task(1, {"text": TEXTS[0]})])
    assert client.post("/predict", json=body).json["results"][0]["model_version"] == first
    second = _train(predictor)
    for weights in predictor.registry.version_dir("7", second).glob("*.safetensors"):
        weights.write_bytes(b"truncated by a full disk")
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200
    item = answer.json["results"][0]
    assert item["model_version"] == first and item["result"]  # not a 500, not cold start
    assert client.post("/setup", json=setup_body()).json["model_version"] == first
    third = _train(predictor)  # the next good version serves as usual
    assert client.post("/predict", json=body).json["results"][0]["model_version"] == third


def test_serving_versions_kept_in_memory_are_bounded(settings, predictor):
    predictor.settings = settings.model_copy(update={"max_serving_projects": 3})
    client = create_app(predictor.settings, predictor=predictor).test_client()
    for project in range(1, 8):
        version = _train(predictor, project=str(project))
        item = client.post("/predict", json=predict_body([ls_task(1, {"text": TEXTS[0]})], project=f"{project}.1"))
        assert item.json["results"][0]["model_version"] == version
    assert list(predictor._serving) == [5, 6, 7]  # project ids are ints once parsed


def test_a_suspended_routing_switches_auto_accept_off_without_a_restart(client, predictor):
    spec, examples, encoder, head, body = _head(predictor)
    version = publish_head(
        predictor.registry, "7", spec, encoder, head, examples, extra={"routing": {"threshold": 0.0}}
    )
    answers = client.post("/predict", json=body).json["results"]
    assert [r["auto_accept"] for r in answers] == [True, True, False, True]  # task 2 is an audit sample
    predictor.registry.suspend_routing("7", answers[0]["model_version"], "humans changed 8 of 40")
    assert all("auto_accept" not in r for r in client.post("/predict", json=body).json["results"])
    assert predictor.registry.current("7") == version  # the version still serves; only routing is off
