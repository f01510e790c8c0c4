"""Fuzzing every endpoint: requests generated from our OpenAPI description, and mutations of them.

Thousands of cases in all; the server must never answer 5xx. Valid-shaped bodies come from the
request schemas (hypothesis-jsonschema); then fields are swapped for arbitrary JSON, bodies are
replaced by arbitrary JSON or raw bytes, and labeling configs by generated XML fragments.
"""

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from backend.learning.candidates import publish_head
from backend.models.tagger import fit_tagger
from backend.server import create_app
from backend.server.openapi import REQUEST_SCHEMAS, openapi
from tests.support.payloads import AG_CONFIG, MULTI_CONFIG
from tests.support.schemas import from_schema
from tests.test_ner import _examples
from tests.test_server_protocol import _train
from tests.test_spans import NER_CONFIG, SPEC

CASES = 600  # per endpoint; 5 POST endpoints and the GET ones: several thousand requests in all
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
CONFIGS = (
    st.sampled_from([AG_CONFIG, MULTI_CONFIG, NER_CONFIG])
    | st.text(max_size=80)
    | st.builds(
        lambda tag, attr: f'<View><Text name="t" value="$t"/><{tag} name="x" toName="t" {attr}/></View>',
        st.sampled_from(["Choices", "Labels", "Rating", "TextArea", "Image", "Choice"]),
        st.sampled_from(["", 'choice="multiple"', 'toName="nope"', "value=''"]),
    )
)
TEXTS = st.text(max_size=200) | st.sampled_from(["", " ", "😀" * 50, "a\x00b", "x" * 3000])


@pytest.fixture(scope="module")
def client(tiny_encoder_dir, tmp_path_factory):
    from backend.serving.predictor import Predictor
    from backend.settings import Settings

    root = tmp_path_factory.mktemp("fuzz")
    s = Settings(
        model_name=str(tiny_encoder_dir),
        registry_dir=root / "registry",
        data_dir=root,
        max_tasks_per_request=50,
        max_request_bytes=200_000,
    )
    predictor = Predictor(s)
    predictor.start(background=False)
    _train(predictor, AG_CONFIG, "7")  # trained versions, so predictions run for real
    examples = _examples()
    tagger = fit_tagger(predictor.encoder(), SPEC, [e.text for e in examples], [e.spans for e in examples])
    publish_head(predictor.registry, "8", SPEC, predictor.encoder(), tagger.head, examples)
    return create_app(s, predictor=predictor).test_client()


def _bodies(path: str) -> st.SearchStrategy:
    schema = REQUEST_SCHEMAS[path]
    valid = from_schema(schema)
    fields = list(schema["properties"])

    def mutate(body: dict, field: str, value) -> dict:  # type: ignore[no-untyped-def]
        return {**body, field: value}

    mutated = st.builds(mutate, valid, st.sampled_from(fields), JSON)
    shaped = st.fixed_dictionaries(
        {"project": st.sampled_from(["7.1700000000", "8.1", "7", "x.y", "../7", "", "9" * 40]) | JSON},
        optional={
            "tasks": st.lists(
                st.fixed_dictionaries(
                    {"id": st.integers() | JSON, "data": st.fixed_dictionaries({"text": TEXTS}) | JSON}
                ),
                max_size=8,
            ),
            "label_config": CONFIGS,
            "schema": CONFIGS,
            "config": CONFIGS,
            "action": st.sampled_from(["ANNOTATION_CREATED", "START_TRAINING", "PROJECT_UPDATED"]) | JSON,
        },
    )
    return valid | mutated | shaped | JSON


def _check(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.is_json and response.json["error"], "every error says what is wrong"


@pytest.mark.parametrize("path", sorted(REQUEST_SCHEMAS))
def test_post_endpoints_never_answer_5xx(client, path):
    @settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=_bodies(path))
    def run(body):  # type: ignore[no-untyped-def]
        _check(client.post(path, data=json.dumps(body), content_type="application/json"))

    run()


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    path=st.sampled_from(sorted(REQUEST_SCHEMAS)),
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
def test_raw_bodies_never_answer_5xx(client, path, raw, content_type):
    _check(client.post(path, data=raw, content_type=content_type))


@settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(project=st.text(max_size=40))
def test_get_endpoints_never_answer_5xx(client, project):
    for path in ("/health", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200
    _check(client.get("/versions", query_string={"project": project}))


def test_every_route_but_health_needs_credentials(settings, predictor):
    guarded = settings.model_copy(
        update={
            "basic_auth_user": "ls",
            "basic_auth_password": SecretStr("s3cret"),
            "webhook_secret": SecretStr("hook"),
        }
    )
    app = create_app(guarded, predictor=predictor)
    client = app.test_client()
    good = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
    routes = [
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    ]
    described = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path) for path, _ in routes}  # Flask's <int:x> is {x}
    assert described == set(openapi()["paths"])  # the description lists every route
    for path, method in routes:
        call = getattr(client, method.lower())
        if path == "/health":
            assert call(path).status_code == 200
            continue
        for headers in (
            {},
            {"Authorization": "Basic " + base64.b64encode(b"ls:nope").decode()},
            {"X-Hitl-Webhook-Secret": "wrong"},
        ):
            assert call(path, json={}, headers=headers).status_code == 401, (method, path, headers)
        assert call(path, json={}, headers=good).status_code != 401, (method, path)
    assert client.post("/webhook", json={}, headers={"X-Hitl-Webhook-Secret": "hook"}).status_code == 400
    assert client.post("/predict", json={}, headers={"X-Hitl-Webhook-Secret": "hook"}).status_code == 401
