"""Security defaults: no open server on a public address, empty secrets are no secrets, bounded
parsing (nested JSON, XML declarations, the config cache), no implicit routes, bounded metrics."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

from backend.labeling import UnsupportedConfig, parse_label_config
from backend.labeling import spec as spec_module
from backend.server import create_app
from backend.server.metrics import ServerMetrics
from backend.server.serve import OpenOnPublicAddress, check_open, is_loopback
from backend.settings import Settings
from tests.support.payloads import AG_CONFIG, annotation_event, predict_body
from tests.support.services import ROOT


def test_no_server_without_auth_on_a_public_address_unless_allowed():
    open_settings = Settings()
    for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.9"]:
        assert is_loopback(host)
        check_open(open_settings, host, 9090)  # loopback: allowed, with a warning
    for host in ["0.0.0.0", "::", "10.1.2.3", "backend.internal", "192.168.0.4"]:
        assert not is_loopback(host)
        with pytest.raises(OpenOnPublicAddress, match="HITL_ALLOW_OPEN=true"):
            check_open(open_settings, host, 9090)
    check_open(Settings(allow_open=True), "0.0.0.0", 9090)
    check_open(Settings(basic_auth_user="ls", basic_auth_password=SecretStr("pw")), "0.0.0.0", 9090)
    # an empty password is no password: still refused
    with pytest.raises(OpenOnPublicAddress):
        check_open(Settings(basic_auth_user="ls", basic_auth_password=SecretStr("")), "0.0.0.0", 9090)


def test_hitl_serve_refuses_to_start_open_on_all_interfaces(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HITL_DATA_DIR": str(tmp_path), "HITL_BASIC_AUTH_PASSWORD": ""}
    done = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--host", "0.0.0.0", "--port", "9"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0:9 without authentication" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_empty_secrets_count_as_unset(monkeypatch, settings):
    monkeypatch.setenv("HITL_WEBHOOK_SECRET", "")
    monkeypatch.setenv("HITL_BASIC_AUTH_USER", "label-studio")
    monkeypatch.setenv("HITL_BASIC_AUTH_PASSWORD", "  ")
    loaded = Settings()
    assert loaded.webhook_secret is None and loaded.basic_auth_password is None and not loaded.auth_enabled
    # with a real secret set, an empty header never matches it
    secured = settings.model_copy(update={"webhook_secret": SecretStr("s3cret")})
    client = create_app(secured, predictor=None, load_in_background=True).test_client()
    for header in ["", " ", "s3cre", "s3cret "]:
        answer = client.post("/webhook", json=annotation_event(), headers={"X-Hitl-Webhook-Secret": header})
        assert answer.status_code == 401, header


def test_deeply_nested_json_is_a_400_and_static_is_gone(settings, predictor):
    client = create_app(settings, predictor=predictor).test_client()
    deep = "[" * 100_000 + "]" * 100_000
    for path in ["/predict", "/webhook", "/setup"]:
        answer = client.post(path, data=deep, content_type="application/json")
        assert answer.status_code == 400 and "nested too deeply" in answer.json["error"], path
    body = predict_body([{"id": 1, "data": {"text": "x", "deep": {}}}])
    assert client.post("/predict", json=body).status_code == 200
    assert client.get("/static/app.py").status_code == 404
    assert not [rule.rule for rule in client.application.url_map.iter_rules() if "static" in rule.rule]


def test_xml_declarations_are_refused_before_parsing():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        + AG_CONFIG.replace("World", "&lol2;")
    )
    for config in [laughs, '<!ENTITY x SYSTEM "file:///etc/passwd">' + AG_CONFIG, "<! doctype x>" + AG_CONFIG]:
        with pytest.raises(UnsupportedConfig, match="DOCTYPE"):
            parse_label_config(config)


def test_the_config_cache_is_bounded_by_characters():
    base = parse_label_config(AG_CONFIG)
    padding = " " * 400_000  # configs that differ only by white space: each its own entry
    for i in range(30):
        assert parse_label_config(AG_CONFIG + padding + " " * i) == base
    assert spec_module._cache_chars <= spec_module._CACHE_CHARS
    assert sum(len(c) for c in spec_module._cache) == spec_module._cache_chars
    assert len(spec_module._cache) < 30


def test_prometheus_series_per_project_are_bounded():
    metrics = ServerMetrics(max_series=10)
    for project in range(100):
        metrics.observe_predictions(str(project), [{"result": [], "model_version": "v1-x"}, {"error": "bad"}])
    text = metrics.render().decode()
    assert text.count("hitl_predictions_total{") == 5 and text.count("hitl_task_errors_total{") == 5
    assert 'project="99"' in text and 'project="0"' not in text


def test_ready_says_what_is_missing(settings, predictor, tmp_path):
    import redis

    from backend.jobs.queue import RetrainQueue
    from backend.server.events import QueueSink

    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})  # nothing listens on port 9
    queue = RetrainQueue(down, redis.Redis.from_url(down.redis_url, socket_connect_timeout=1))
    client = create_app(down, predictor=predictor, events=QueueSink(queue)).test_client()
    answer = client.get("/ready")
    assert answer.status_code == 503 and answer.json["queue"].startswith("Redis unavailable")
    assert answer.json["encoder"] == "ok"
    assert client.get("/health").json["status"] == "UP"  # predictions still work: Label Studio keeps us
    without_queue = create_app(settings, predictor=predictor).test_client().get("/ready")
    assert without_queue.status_code == 503 and "HITL_REDIS_URL" in without_queue.json["queue"]
