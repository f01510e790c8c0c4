"""A flood of webhooks over random project ids (no webhook secret set) queues, schedules and keeps
nothing, while a project Label Studio confirms keeps being served."""

from __future__ import annotations

import random
import time

import pytest
import redis
from pydantic import SecretStr
from rq import Queue

from backend.jobs.scheduled import known_projects
from backend.server import create_app
from backend.settings import Settings
from backend.stores.audit import AuditStore
from tests.support.payloads import AG_CONFIG, annotation_event

pytestmark = pytest.mark.e2e


def test_ten_thousand_webhooks_over_random_ids_leave_queue_and_schedule_unchanged(
    label_studio, stack, redis_server, tmp_path, predictor
):
    from backend.stores.labelstudio import LabelStudioClient

    ls = LabelStudioClient(label_studio.url, label_studio.token)
    real = ls.create_project("Flood: the real project", AG_CONFIG)
    ls.connect_backend(real, stack.backend_url)  # an ML backend connected: Label Studio says we serve it
    unconnected = ls.create_project("Flood: no backend", AG_CONFIG)
    # a Redis database of its own: the flood uses up this minute's look-ups, which other tests' new
    # projects on the shared database would then wait out (that delay is the flood bound working)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    settings = Settings(
        model_name=predictor.settings.model_name,
        redis_url=redis_url,
        label_studio_url=label_studio.url,
        label_studio_api_key=SecretStr(label_studio.token),
        registry_dir=tmp_path / "registry",
        data_dir=tmp_path,
        queue_name="flood-test",
        project_lookups_per_minute=50,
    )
    connection = redis.Redis.from_url(redis_url)
    queues = [Queue(name, connection=connection) for name in ("flood-test", "flood-test-slow")]
    for queue in queues:
        queue.empty()
    client = create_app(settings, predictor=predictor).test_client()

    first = client.post("/webhook", json=annotation_event(project=real)).json
    assert first["status"] == "queued", first
    assert client.post("/webhook", json=annotation_event(project=unconnected)).json["status"] == "dropped"
    jobs_before = [q.count for q in queues]
    schedule_before = known_projects(settings)
    events_before = len(AuditStore.from_settings(settings).events(real))
    keys_before = set(connection.keys("hitl:*"))  # (other tests' workers share this Redis: rq keys are theirs)

    minute_before = int(time.time() // 60)
    rng = random.Random(0)
    statuses: dict[str, int] = {}
    for _ in range(10_000):
        project = rng.randrange(1_000_000, 2_000_000_000)
        event = (
            annotation_event(project=project)
            if rng.random() < 0.8
            else {"action": "PROJECT_UPDATED", "project": {"id": project}}
        )
        answer = client.post("/webhook", json=event)
        assert answer.status_code == 200  # Label Studio does not retry webhooks: a 2xx, then dropped
        statuses[answer.json["status"]] = statuses.get(answer.json["status"], 0) + 1
    assert statuses == {"dropped": 10_000}

    assert [q.count for q in queues] == jobs_before
    assert known_projects(settings) == schedule_before == [real]
    assert len(AuditStore.from_settings(settings).events(real)) == events_before
    assert AuditStore.from_settings(settings).project_ids() == [real]
    minutes = int(time.time() // 60) - minute_before + 1
    new_keys = set(connection.keys("hitl:*")) - keys_before
    assert len(new_keys) <= minutes * (50 + 1)  # cached "no" answers (bounded by the look-up rate), rate counters
    lasting = {key: connection.ttl(key) for key in new_keys if not 0 < connection.ttl(key) <= 120}
    assert not lasting, f"every key the flood left expires: {lasting}"
    # the confirmed project is still served during the flood (its confirmation is cached)
    again = client.post("/webhook", json=annotation_event(project=real)).json
    assert again["status"] in ("queued", "coalesced")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "hitl_webhooks_dropped_total 10001.0" in metrics
