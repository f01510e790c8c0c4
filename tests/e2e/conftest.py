"""The whole stack as real processes: Label Studio, Redis, `hitl serve`, `hitl worker`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from backend.stores.labelstudio import LabelStudioClient
from backend.stores.registry import Registry
from tests.support.data import load_jsonl
from tests.support.payloads import AG_CONFIG
from tests.support.services import Proc, start_backend, start_worker

SECRET = "e2e-webhook-secret"


@dataclass
class Stack:
    env: dict[str, str]
    backend_url: str
    backend: Proc
    workers: list[Proc]
    ls: LabelStudioClient
    redis: redis.Redis
    registry: Registry
    logs: Path
    projects: dict[str, int] = field(default_factory=dict)

    def add_worker(self, **extra_env: str) -> Proc:
        worker = start_worker({**self.env, **extra_env}, self.logs, name=f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def new_project(self, title: str, rows: list[dict], config: str = AG_CONFIG) -> int:
        project_id = self.ls.create_project(title, config)
        self.ls.import_tasks(project_id, [{"text": r["text"], "gold": r["label"]} for r in rows])
        self.ls.connect_backend(project_id, self.backend_url)
        self.ls.ensure_webhook(project_id, self.backend_url + "/webhook", {"X-Hitl-Webhook-Secret": SECRET})
        return project_id

    def tasks(self, project_id: int) -> list[dict]:
        return list(self.ls.tasks(project_id))


@pytest.fixture(scope="session")
def stack(label_studio, redis_server, tmp_path_factory):
    from tests.support.tiny import build_tiny_vit

    root = tmp_path_factory.mktemp("stack")
    logs = root / "logs"
    logs.mkdir()
    vit = build_tiny_vit(root / "vit")  # image projects: a tiny ViT (no image model can be downloaded here)
    env = {
        "HITL_REDIS_URL": redis_server.url,
        "HITL_LABEL_STUDIO_URL": label_studio.url,
        "HITL_LABEL_STUDIO_API_KEY": label_studio.token,
        "HITL_REGISTRY_DIR": str(root / "registry"),
        "HITL_DATA_DIR": str(root / "data"),
        "HITL_WEBHOOK_SECRET": SECRET,
        "HITL_RETRAIN_DEBOUNCE_S": "1",
        "HITL_JOB_RETRY_INTERVALS_S": json.dumps([1, 2, 2]),
        "HITL_LOG_LEVEL": "INFO",
        "HITL_IMAGE_MODEL_NAME": str(vit),
    }
    backend, url = start_backend(env, logs)
    stack = Stack(
        env=env,
        backend_url=url,
        backend=backend,
        workers=[],
        ls=LabelStudioClient(label_studio.url, label_studio.token),
        redis=redis.Redis.from_url(redis_server.url),
        registry=Registry(root / "registry"),
        logs=logs,
    )
    stack.add_worker()
    yield stack
    for worker in stack.workers:
        worker.stop()
    backend.stop()


@pytest.fixture(scope="session")
def ag_rows():
    return load_jsonl("ag_news", "train", 400)
