"""Without basic auth, only requests naming this server are answered: a DNS-rebinding page (its own
name resolved to 127.0.0.1) must not read /dashboard or post to /predict and /webhook."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from backend.server import create_app
from backend.server.auth import host_allowed
from backend.settings import Settings
from tests.support.payloads import annotation_event, predict_body

FORGED = ["evil.example", "evil.example:9090", "127.0.0.1.evil.example", "localhost.evil.example:80", ""]
LOCAL = ["localhost", "localhost:9090", "127.0.0.1:41234", "[::1]:9090", "127.0.0.9", "LOCALHOST.", "10.0.0.7:9090"]


@pytest.mark.parametrize(
    "path, method, body",
    [
        ("/dashboard", "get", None),
        ("/predict", "post", predict_body([])),
        ("/webhook", "post", annotation_event()),
        ("/health", "get", None),
    ],
)
def test_a_forged_host_is_refused_with_auth_off(settings, path, method, body):
    client = create_app(settings, predictor=None).test_client()
    for host in FORGED:
        answer = getattr(client, method)(path, json=body, headers={"Host": host})
        assert answer.status_code == 400 and "HITL_ALLOWED_HOSTS" in answer.json["error"], (host, answer.json)
    assert getattr(client, method)(path, json=body, headers={"Host": "127.0.0.1:9090"}).status_code != 400


def test_which_hosts_are_answered():
    local = Settings()
    assert all(host_allowed(h, local) for h in LOCAL)
    assert not any(host_allowed(h, local) for h in FORGED)
    # docker compose: Label Studio calls http://backend:9090 (a setting), or the bound name
    assert host_allowed("backend:9090", Settings(allowed_hosts="backend, proxy.internal"))
    assert host_allowed("hitl.lan:9090", Settings(host="hitl.lan"))
    assert not host_allowed("evil.example", Settings(allowed_hosts="backend"))
    assert host_allowed("anything", Settings(allowed_hosts="*"))
    # with basic auth a rebinding page has no credentials: any host, unless the list is set
    guarded = Settings(basic_auth_user="ls", basic_auth_password=SecretStr("pw"))
    assert host_allowed("backend:9090", guarded)
    assert not host_allowed("evil.example", guarded.model_copy(update={"allowed_hosts": "backend"}))
