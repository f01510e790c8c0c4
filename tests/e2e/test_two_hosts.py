"""Two hosts that share only PostgreSQL and Redis: two `hitl run`s (the README's main job) with
their own data folders, one real Label Studio. Corrections made in Label Studio reach host A's
webhook; the retrain runs on whichever host's worker takes the job; both hosts must serve the
version trained on each correction within seconds, and neither keeps shared state in its folder."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
import requests

from backend.stores.labelstudio import LabelStudioClient
from backend.stores.shared_registry import SharedRegistry
from tests.support.data import load_jsonl
from tests.support.main_job import main_job
from tests.support.payloads import predict_body
from tests.support.services import ROOT, postgres_database, wait_until

pytestmark = pytest.mark.e2e

CONFIG = ROOT / "labeling_configs" / "text_classification.xml"
WARM_UP = 24  # labels before the first measured correction (past cold start)
CORRECTIONS = 6
TARGET_S = 10.0  # the budget: a correction served by both hosts, median


def test_a_correction_is_served_by_both_hosts_within_seconds(label_studio, redis_server, tmp_path):
    rows = load_jsonl("ag_news", "train", 120)
    with postgres_database("hitl_hosts") as (_, url):
        shared = {
            "HITL_DATABASE_URL": url,
            "HITL_REDIS_URL": redis_server.url,
            "HITL_QUEUE_NAME": f"hosts-{uuid.uuid4().hex[:8]}",  # no other test's jobs (the Redis is shared)
            "HITL_WEBHOOK_SECRET": "hosts-secret",
        }
        queues = _Queues(redis_server.url, shared["HITL_QUEUE_NAME"])
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with (
            main_job(label_studio, tmp_path / "a", **shared) as a,
            main_job(label_studio, tmp_path / "b", **shared) as b,
        ):
            tasks = [{"text": r["text"], "gold": r["label"]} for r in rows]
            project = a.load_project(CONFIG, "Two hosts", tasks)
            ls = LabelStudioClient(label_studio.url, label_studio.token)
            registry = SharedRegistry(tmp_path / "observer", url)
            pool = list(ls.unlabeled_tasks(project))
            probe = predict_body(
                [{"id": t["id"], "data": {"text": t["data"]["text"]}} for t in pool[-3:]], CONFIG.read_text()
            )
            probe["project"] = f"{project}.0"

            def trained_on(version: str) -> int:
                if not version.startswith("v"):
                    return 0
                return int(registry.meta(project, version)["training"]["examples"])

            def serves(host_url: str, labels: int) -> bool:
                items = requests.post(host_url + "/predict", json=probe, timeout=30).json()["results"]
                return all(trained_on(i.get("hitl_version", "")) >= labels for i in items)

            for task in pool[:WARM_UP]:
                ls.create_annotation(task["id"], _choice(task["data"]["gold"]))
            wait_until(lambda: serves(a.url, WARM_UP) and serves(b.url, WARM_UP), 300, "a version on both hosts")

            delays: dict[str, list[float]] = {"a": [], "b": []}
            for n, task in enumerate(pool[WARM_UP : WARM_UP + CORRECTIONS], start=WARM_UP + 1):
                # each correction is timed from a quiet queue: the previous one's sync, label check and
                # proposals share this machine's 2 cores with both hosts and Label Studio, not a fleet's
                wait_until(queues.idle, 300, "the previous correction's follow-up jobs")
                ls.create_annotation(task["id"], _choice(task["data"]["gold"]))
                made = time.monotonic()
                waiting = {"a": a.url, "b": b.url}
                while waiting:
                    assert time.monotonic() - made < 120, f"correction {n} not served by {sorted(waiting)} in 120 s"
                    for name, host_url in list(waiting.items()):
                        if serves(host_url, n):
                            delays[name].append(time.monotonic() - made)
                            del waiting[name]
                    time.sleep(0.2)

            # every version is whole on both hosts, and neither host keeps shared state in its folder
            for folder in (a.folder, b.folder):
                assert not (folder / "sync-state.sqlite3").exists() and not (folder / "audit.sqlite3").exists()
                assert not (folder / "registry" / str(project) / "CURRENT").exists()
            versions = registry.versions(project)
            assert len(versions) >= 2 and registry.current(project) == versions[-1]
            ran = {  # both hosts' workers drain the one queue (Redis wakes blocked workers in turn)
                name: (host.folder.parent / "run.log").read_text().count("Successfully completed retrain")
                for name, host in (("a", a), ("b", b))
            }
            assert ran["a"] and ran["b"], ran
            assert not a.errors() and not b.errors(), (a.errors() + b.errors())[-3:]

    medians = {name: statistics.median(d) for name, d in delays.items()}
    print(
        f"two hosts: correction served by host A median {medians['a']:.1f} s (max {max(delays['a']):.1f}), "
        f"host B median {medians['b']:.1f} s (max {max(delays['b']):.1f}) over {CORRECTIONS} corrections; "
        f"{len(versions)} versions; retrains run by host A {ran['a']}, by host B {ran['b']}"
    )
    assert max(medians.values()) <= TARGET_S, medians


class _Queues:
    """The hosts' shared job queues (fast and slow), as Redis holds them."""

    def __init__(self, redis_url: str, name: str) -> None:
        from redis import Redis

        self.redis, self.names = Redis.from_url(redis_url), (name, f"{name}-slow")

    def idle(self) -> bool:
        from rq import Queue
        from rq.registry import StartedJobRegistry

        return all(
            not Queue(n, connection=self.redis).count and not StartedJobRegistry(n, connection=self.redis).count
            for n in self.names
        )


def _choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
