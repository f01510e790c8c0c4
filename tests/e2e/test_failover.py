"""Failover between hosts that share only PostgreSQL and Redis: `kill -9` of a whole host (its
server and its worker at once) in the middle of a retrain, of a publish and of a sync. The other
host redoes the work; no correction is lost, no partial version is ever visible, and `/predict`
on the surviving host never fails.

Real processes throughout: Label Studio, a private redis-server, this machine's PostgreSQL, and
per host `hitl serve` and `hitl worker` with a data folder of their own. The project's model is a
test plug-in that, on cue, takes its time in ``fit`` or writes a large version (a long upload),
so each kill lands inside the step it is meant for.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid

import pytest
import requests
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from backend.jobs.queue import RetrainQueue
from backend.labeling import parse_label_config
from backend.serving.predictor import load_serving
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient
from backend.stores.queue_state import SyncState
from backend.stores.shared_registry import SharedRegistry
from tests.e2e.conftest import SECRET
from tests.support.data import load_jsonl
from tests.support.payloads import predict_body
from tests.support.services import (
    ROOT,
    as_host,
    hitl,
    host_names_apart,
    postgres_database,
    start_backend,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.e2e

MODEL = "tests.support.plugins:SlowOnCue"
CONFIG = ROOT / "labeling_configs" / "text_classification.xml"
FIRST = 16  # labels before the first kill


class Host:
    """One host: a server and a worker with their own data folder and host name, killed together."""

    def __init__(self, env: dict[str, str], logs) -> None:
        name = env["HITL_DATA_DIR"].rsplit("/", 1)[-1]
        self.server, self.url = start_backend(env, logs, as_host(f"host-{name}"))
        self.worker = start_worker(env, logs, f"worker-{name}", as_host(f"host-{name}"))

    def kill9(self) -> None:
        for proc in (self.server, self.worker):
            if proc is not None:
                proc.kill9()


class PredictWatcher(threading.Thread):
    """Asks a host's /predict twice a second, and keeps every failure."""

    def __init__(self, url: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.asked, self.failures = 0, []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                answer = requests.post(self.url + "/predict", json=self.body, timeout=30)
                items = answer.json().get("results") if answer.status_code == 200 else None
                if items is None or any("error" in item for item in items):
                    self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.asked += 1
            self.stopped.wait(0.5)


def test_a_host_killed_mid_retrain_publish_or_sync_loses_nothing(label_studio, redis_server, tmp_path):
    rows = load_jsonl("ag_news", "train", 160)
    cue = tmp_path / "cue.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    with postgres_database("hitl_failover") as (_, url):
        common = {
            "HITL_DATABASE_URL": url,
            "HITL_REDIS_URL": redis_server.url,
            "HITL_QUEUE_NAME": f"failover-{uuid.uuid4().hex[:8]}",
            "HITL_LABEL_STUDIO_URL": label_studio.url,
            "HITL_LABEL_STUDIO_API_KEY": label_studio.token,
            "HITL_WEBHOOK_SECRET": SECRET,
            "HITL_TEST_CUE": str(cue),
        }
        env = {name: _folders(common, tmp_path / name) for name in ("a", "b", "c")}
        server_a, url_a = start_backend(env["a"], logs)  # host A serves; its worker starts after each kill
        b = Host(env["b"], logs)
        workers_a = []
        try:
            project = _set_up(env["a"], url_a, rows, tmp_path)
            ls = LabelStudioClient(label_studio.url, label_studio.token)
            registry = SharedRegistry(tmp_path / "observer", url)
            redis = Redis.from_url(redis_server.url)
            settings = Settings(redis_url=redis_server.url, queue_name=common["HITL_QUEUE_NAME"])
            pool = list(ls.unlabeled_tasks(project))
            body = predict_body(
                [{"id": t["id"], "data": {"text": t["data"]["text"]}} for t in pool[-3:]], CONFIG.read_text()
            )
            body["project"] = f"{project}.0"
            watcher = PredictWatcher(url_a, body)
            watcher.start()
            labeled = _label(ls, pool[:FIRST])
            _wait_for_version_of(registry, project, labeled, "the first version (on host B)")

            # 1. host B dies in the middle of a retrain (its plug-in's fit sleeps)
            cue.write_text(json.dumps({"fit_s": 60}))
            labeled += _label(ls, pool[labeled : labeled + 1])
            job = _wait_for_started(redis, settings, "retrain")
            time.sleep(2)
            b.kill9()
            killed = time.monotonic()
            cue.unlink()
            workers_a.append(start_worker(env["a"], logs, name="worker-a"))
            _wait_for_version_of(registry, project, labeled, "host A to redo the retrain")
            redone = {"retrain": _wait_for_finished(redis, job, "the killed retrain", killed)}

            # 2. host B (back) dies in the middle of a publish: its version's files are uploading
            workers_a.pop().stop()
            b = Host(env["b"], logs)
            cue.write_text(json.dumps({"pad_mb": 400}))
            labeled += _label(ls, pool[labeled : labeled + 1])
            wait_until(lambda: _uploads(registry), 180, "host B to start uploading a version")
            b.kill9()
            killed = time.monotonic()
            cue.unlink()
            left = _uploads(registry)
            workers_a.append(start_worker(env["a"], logs, name="worker-a"))
            _wait_for_version_of(registry, project, labeled, "host A to redo the retrain and publish")
            redone["publish"] = time.monotonic() - killed
            referenced = registry.db.run(
                lambda conn: conn.execute(
                    "SELECT count(*) FROM hitl_versions WHERE upload = ANY(%s)", (left,)
                ).fetchone()
            )
            assert referenced[0] == 0, "a version names the upload of the killed publish"

            # 3. a new host C, its folder empty (its caches fill on the way), dies in the middle of a sync
            wait_until(lambda: _idle(redis, settings), 240, "host A's worker to finish the queue")
            workers_a.pop().stop()
            c = Host(env["c"], logs)
            b = c
            RetrainQueue(settings, redis).request(project, "sync", reason="failover test")
            job = _wait_for_started(redis, settings, "sync")
            time.sleep(1)
            c.kill9()
            killed = time.monotonic()
            workers_a.append(start_worker(env["a"], logs, name="worker-a"))
            redone["sync"] = _wait_for_finished(redis, job, "the killed sync", killed)
            label = registry.served(project)
            unlabeled = {t["id"] for t in ls.unlabeled_tasks(project)}
            written = SyncState(url).get(project)
            assert unlabeled <= set(written) and all(written[t][0] == label for t in unlabeled)
            tasks = [t for t in ls.tasks(project) if t["id"] in unlabeled]
            assert all(any(p["model_version"] == label for p in t.get("predictions") or []) for t in tasks)

            # nothing lost, nothing partial, nothing failed
            watcher.stopped.set()
            watcher.join(10)
            assert watcher.asked > 50 and not watcher.failures, watcher.failures[:3]
            audit = AuditStore(url)
            assert {c["task_id"] for c in audit.corrections(project)} >= {t["id"] for t in pool[:labeled]}
            spec = parse_label_config(CONFIG.read_text())
            for version in registry.versions(project):  # every version a host could load is whole
                loaded = load_serving(registry, project, spec, None, version)
                assert loaded.model is not None, (version, loaded.error)
        finally:
            for proc in [server_a, *workers_a]:
                proc.stop()
            b.kill9()
    apart = (
        "hosts under their own names: dead workers found by their expired liveness records"
        if host_names_apart()
        else "one host name (no unshare --uts here): dead workers found by their pids"
    )
    print(
        "failover: 3 kills (retrain, publish, sync), each redone by the other host within "
        + ", ".join(f"{step} {s:.0f} s" for step, s in redone.items())
        + f" of the kill ({apart}); {labeled} corrections all trained on; "
        f"/predict on the surviving host answered {watcher.asked} of {watcher.asked} requests"
    )


def _folders(common: dict[str, str], folder) -> dict[str, str]:
    """A host's settings: the shared ones, and a data folder of its own."""
    return {**common, "HITL_DATA_DIR": str(folder), "HITL_REGISTRY_DIR": str(folder / "reg")}


def _set_up(env: dict[str, str], backend_url: str, rows: list[dict], tmp_path) -> int:
    loaded = _hitl(
        env, "configs", "load", str(CONFIG), "--project", "Failover", "--backend-url", backend_url, "--model", MODEL
    )
    assert loaded.returncode == 0, loaded.stderr
    project = int(json.loads(loaded.stdout)["project_id"])
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"text": r["text"], "gold": r["label"]}) + "\n" for r in rows))
    imported = _hitl(env, "import", str(tasks), "--project", str(project), "--quiet")
    assert imported.returncode == 0, imported.stderr
    return project


def _hitl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A `hitl` command with a host's settings, as its operator would run it."""
    return subprocess.run(hitl(*args), env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _label(ls: LabelStudioClient, tasks: list[dict]) -> int:
    for task in tasks:
        result = [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [task["data"]["gold"]]}}
        ]
        ls.create_annotation(task["id"], result)
    return len(tasks)


def _wait_for_version_of(registry: SharedRegistry, project: int, labels: int, what: str) -> str:
    def trained() -> str | None:
        current = registry.current(project)
        examples = int(registry.meta(project, current)["training"]["examples"]) if current else 0
        return current if examples >= labels else None

    return wait_until(trained, 240, f"{what}: a version trained on {labels} labels")


def _wait_for_started(redis: Redis, settings: Settings, kind: str) -> Job:
    def started() -> Job | None:
        for name in (settings.queue_name, settings.slow_queue_name):
            for job_id in StartedJobRegistry(name, connection=redis).get_job_ids():
                job = Job.fetch(job_id, connection=redis)
                if (job.description or "").startswith(kind):
                    return job
        return None

    return wait_until(started, 180, f"a {kind} job to start on host B", interval=0.05)


def _wait_for_finished(redis: Redis, job: Job, what: str, killed: float) -> float:
    """The job a killed host had started ends finished, run again by the surviving host's worker;
    seconds from the kill."""
    wait_until(lambda: Job.fetch(job.id, connection=redis).get_status() == "finished", 240, f"{what} to be redone")
    return time.monotonic() - killed


def _idle(redis: Redis, settings: Settings) -> bool:
    names = (settings.queue_name, settings.slow_queue_name)
    return all(
        not StartedJobRegistry(name, connection=redis).get_job_ids() and not Queue(name, connection=redis).count
        for name in names
    )


def _uploads(registry: SharedRegistry) -> list[str]:
    rows = registry.db.run(lambda conn: conn.execute("SELECT upload FROM hitl_uploads").fetchall())
    return [row[0] for row in rows]
