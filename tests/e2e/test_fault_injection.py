"""Faults during a stream of annotations: PostgreSQL (the audit store) and the backend's own Redis
restart while annotators work. Afterwards the served version was trained on every annotation made,
and the audit store holds every correction exactly once.

Real processes throughout: Label Studio, a private redis-server, `hitl serve`, `hitl worker`, and
this machine's PostgreSQL, restarted with pg_ctlcluster (its clients see their connections die and
new ones refused for a moment, as in a real restart).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import psycopg
import pytest
import requests

from backend.services.embedded_redis import EmbeddedRedis
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from backend.tools.bench.common import free_port
from tests.e2e.conftest import SECRET
from tests.e2e.test_retrain_loop import choice
from tests.support.payloads import AG_CONFIG
from tests.support.services import PG_ADMIN, postgres_database, start_backend, start_worker, wait_until

pytestmark = pytest.mark.e2e


def restart_postgres() -> str:
    """Restart the PostgreSQL cluster on port 5432; returns how."""
    if shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster"):
        for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.splitlines():
            version, name, port, *_ = line.split()
            if port == "5432":
                subprocess.run(["pg_ctlcluster", version, name, "restart"], check=True, timeout=120)
                wait_until(lambda: psycopg.connect(PG_ADMIN, connect_timeout=2).close() or True, 60, "PostgreSQL up")
                return "pg_ctlcluster restart"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # not a local cluster: drop every connection
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname LIKE 'hitl_fault_%'"
        )
    return "pg_terminate_backend"


def test_restarts_of_postgresql_and_redis_lose_no_correction(label_studio, ag_rows, tmp_path):
    with postgres_database("hitl_fault") as (_, audit_url):
        _session_with_faults(label_studio, ag_rows, tmp_path, audit_url)


def _session_with_faults(label_studio, ag_rows, tmp_path, audit_url: str) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis", persistent=True, port=free_port()).start()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        "HITL_REDIS_URL": redis_server.url,
        "HITL_AUDIT_DB_URL": audit_url,
        "HITL_LABEL_STUDIO_URL": label_studio.url,
        "HITL_LABEL_STUDIO_API_KEY": label_studio.token,
        "HITL_REGISTRY_DIR": str(tmp_path / "registry"),
        "HITL_DATA_DIR": str(tmp_path / "data"),
        "HITL_WEBHOOK_SECRET": SECRET,
        "HITL_RETRAIN_DEBOUNCE_S": "1",
        "HITL_JOB_RETRY_INTERVALS_S": "[2, 4, 8]",
        "HITL_FINETUNE_EVERY": "0",
    }
    backend, url = start_backend(env, logs)
    worker = start_worker(env, logs)
    ls = LabelStudioClient(label_studio.url, label_studio.token)
    registry = Registry(tmp_path / "registry")
    try:
        project = ls.create_project("Faults", AG_CONFIG)
        ls.import_tasks(project, [{"text": r["text"], "gold": r["label"]} for r in ag_rows[:90]])
        ls.connect_backend(project, url)
        ls.ensure_webhook(project, url + "/webhook", {"X-Hitl-Webhook-Secret": SECRET})
        tasks = list(ls.tasks(project))
        annotated: list[int] = []

        def annotate(batch: list[dict]) -> None:
            for task in batch:
                annotated.append(ls.create_annotation(task["id"], choice(task["data"]["gold"])))

        def trained_on_everything() -> bool:
            current = registry.current(str(project))
            return bool(current) and set(annotated) <= set(
                registry.meta(str(project), current)["training"]["annotation_ids"]
            )

        annotate(tasks[:25])
        wait_until(trained_on_everything, 180, "a version trained on the first 25 annotations")

        how = restart_postgres()  # the worker's audit connection dies; the next retrain must reconnect
        annotate(tasks[25:40])
        wait_until(trained_on_everything, 180, f"a version trained on 40 annotations after {how}")

        redis_server.stop()  # the queue is gone for a while: webhooks answer 503, the worker waits
        annotate(tasks[40:48])
        down = requests.post(
            url + "/webhook",
            headers={"X-Hitl-Webhook-Secret": SECRET},
            timeout=10,
            json={"action": "ANNOTATION_CREATED", "project": {"id": project}},
        )
        assert down.status_code == 503 and "retry later" in down.json()["error"]
        redis_server.start()
        annotate(tasks[48:60])  # annotators carry on; their webhooks reach the queue again
        wait_until(trained_on_everything, 240, "a version trained on all 60 annotations after the Redis restart")
        assert worker.alive() and backend.alive()

        corrections = AuditStore(audit_url).corrections(project)
        counts = Counter(row["annotation_id"] for row in corrections)
        assert set(counts) == set(annotated), "every correction is in the audit store"
        assert set(counts.values()) == {1}, "and exactly once"
        versions = [v for v in AuditStore(audit_url).versions(project) if v["published"]]
        assert len(versions) >= 3 and registry.current(str(project)) in {v["version"] for v in versions}
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()
