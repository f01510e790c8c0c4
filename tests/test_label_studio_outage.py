"""A Label Studio outage: the worker logs one line per failed retrain (RQ still retries it, no
traceback), and /ready says Label Studio is unreachable and since when, from what the workers found."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from rq import Queue
from rq.registry import ScheduledJobRegistry

from backend.ids import JobKind
from backend.jobs.outage import reaching_label_studio, unreachable_since
from backend.jobs.queue import RetrainQueue
from backend.server import create_app
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioUnavailable
from backend.tools.bench.common import free_port
from tests.support.services import Proc, hitl

PROJECT = 3


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_a_retrain_during_an_outage_is_one_log_line_and_is_retried(
    redis_server, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=redis_server.url,
        queue_name=f"outage-{time.time_ns()}",
        slow_queue_name=f"outage-slow-{time.time_ns()}",
        label_studio_url=_closed_port_url(),
        label_studio_api_key="not-used",  # type: ignore[arg-type]
        model_name=str(tiny_encoder_dir),
        data_dir=tmp_path,
        retrain_debounce_s=0,
    )
    queue = RetrainQueue(settings)
    queue.request(PROJECT, JobKind.HEAD)
    env = {
        "HITL_REDIS_URL": settings.redis_url or "",
        "HITL_QUEUE_NAME": settings.queue_name,
        "HITL_SLOW_QUEUE_NAME": settings.slow_queue_name,
        "HITL_LABEL_STUDIO_URL": settings.label_studio_url or "",
        "HITL_LABEL_STUDIO_API_KEY": "not-used",
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_DATA_DIR": str(tmp_path),
        "HITL_RETRAIN_DEBOUNCE_S": "0",
    }
    worker = Proc("worker", hitl("worker", "--burst", "--queues", "fast"), env, tmp_path)
    try:
        worker.process.wait(timeout=180)
    finally:
        worker.stop()
    log = worker.log_tail(20000)
    assert "Traceback" not in log, log
    about = [line for line in log.splitlines() if "unreachable" in line]
    assert len(about) == 1, log
    assert settings.label_studio_url in about[0] and "retried" in about[0], about
    # RQ still retries it: the job waits in the scheduled registry for its next try
    fast = Queue(settings.queue_name, connection=queue.connection)
    assert ScheduledJobRegistry(queue=fast).get_job_ids(), log

    # the workers left the outage's mark: /ready says so, with the time of their first failure
    marked = unreachable_since(queue.connection)
    assert marked is not None and marked[1] == settings.label_studio_url
    answer = create_app(settings, load_in_background=True).test_client().get("/ready")
    assert answer.status_code == 503
    line = answer.json["label_studio"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(marked[0]))
    assert line.startswith(f"unreachable since {stamp}") and "the workers" in line, line
    assert settings.label_studio_url in line


def test_a_job_that_reaches_label_studio_clears_the_mark(redis_server, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_server.url, label_studio_url=_closed_port_url(), data_dir=tmp_path)
    connection = RetrainQueue(settings).connection
    with pytest.raises(LabelStudioUnavailable), reaching_label_studio(settings):
        raise httpx.ConnectError("refused")
    first = unreachable_since(connection)
    assert first is not None
    with pytest.raises(LabelStudioUnavailable), reaching_label_studio(settings):
        raise httpx.ConnectError("refused again")
    assert unreachable_since(connection) == first  # the outage's start stays
    with reaching_label_studio(settings):
        pass  # Label Studio answered
    assert unreachable_since(connection) is None


def test_ready_says_since_when_label_studio_is_unreachable(settings: Settings, predictor) -> None:
    down = settings.model_copy(update={"label_studio_url": _closed_port_url(), "label_studio_api_key": SecretStr("x")})
    client = create_app(down, predictor=predictor).test_client()
    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.json["label_studio"].startswith("unreachable since "), answer.json
    assert "this server" in answer.json["label_studio"]
