import uuid

import redis
from rq import Queue

from backend.jobs.schedule_runner import load_scheduler
from backend.jobs.scheduled import finetune_due, known_projects, retrain_all_projects
from backend.settings import Settings, get_settings
from backend.stores.audit import AuditStore
from backend.stores.registry import Registry


def test_schedule_file_registers_hourly_and_nightly_jobs(redis_server):
    scheduler = load_scheduler(Settings(redis_url=redis_server.url))
    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"hourly-head", "nightly-finetune", "queue-sync"}
    assert jobs["queue-sync"].kwargs == {"kind": "sync"}
    assert jobs["hourly-head"].cron == "0 * * * *" and jobs["nightly-finetune"].kwargs == {"kind": "full"}


def test_scheduled_retrain_requests_every_known_project_once(redis_server, tmp_path, monkeypatch):
    queue_name = "sched-test"
    for key, value in {
        "HITL_REDIS_URL": redis_server.url,
        "HITL_REGISTRY_DIR": str(tmp_path / "reg"),
        "HITL_DATA_DIR": str(tmp_path),
        "HITL_QUEUE_NAME": queue_name,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    Registry(tmp_path / "reg").publish("3", lambda folder: {"training": {"kind": "head"}})
    AuditStore.from_settings(get_settings()).record_event("ANNOTATION_CREATED", 5, [1], "queued")
    assert known_projects(get_settings()) == [3, 5]
    assert retrain_all_projects("head") == {"3": "queued", "5": "queued"}
    assert retrain_all_projects("head") == {"3": "coalesced", "5": "coalesced"}
    assert Queue(queue_name, connection=redis.Redis.from_url(redis_server.url)).count == 2
    get_settings.cache_clear()


def test_finetune_due_as_often_as_it_pays(tmp_path):
    """From the minimum on; then when labels grew by the growth fraction (or by `every`), once
    `cost_factor` times the last fine-tune's own duration has passed since it was published."""
    settings = Settings(finetune_min_labels=100, finetune_growth=0.3, finetune_every=500, finetune_cost_factor=3)
    registry = Registry(tmp_path)
    assert finetune_due(registry, 1, 99, settings) is False
    assert finetune_due(registry, 1, 100, settings) is True  # the first fine-tune: no need to wait for 500 labels
    registry.publish(1, lambda folder: {"training": {"kind": "full", "examples": 500, "train_s": 100.0}})
    published = registry.meta(1, registry.current(1))["created_at"]
    assert finetune_due(registry, 1, 649, settings, now=published + 1000) is False  # grew by < 30 %
    assert finetune_due(registry, 1, 650, settings, now=published + 1000) is True
    assert finetune_due(registry, 1, 650, settings, now=published + 299) is False  # < 3 × its 100 s since
    assert finetune_due(registry, 1, 650, settings, now=published + 300) is True
    big_growth = settings.model_copy(update={"finetune_growth": 10.0})
    assert finetune_due(registry, 1, 999, big_growth, now=published + 1000) is False
    assert finetune_due(registry, 1, 1000, big_growth, now=published + 1000) is True  # `every` bounds the wait
    assert finetune_due(registry, 1, 10_000, settings.model_copy(update={"finetune_every": 0})) is False
    registry.publish(1, lambda folder: {"training": {"kind": "head", "examples": 700}})  # heads do not reset it
    assert finetune_due(registry, 1, 650, settings, now=published + 1000) is True


def test_the_schedule_runs_once_across_hosts_and_moves_when_its_leader_dies(redis_server, monkeypatch):
    """One scheduler per host, one Redis: only the lease holder enqueues; when it stops renewing
    (its host died), another takes the lease and enqueues the next run."""
    from datetime import UTC, datetime, timedelta

    queue_name = f"fleet-test-{uuid.uuid4().hex[:8]}"  # the schedule file's queue: no worker of another test drains it
    monkeypatch.setenv("HITL_QUEUE_NAME", queue_name)
    get_settings.cache_clear()
    settings = Settings(redis_url=redis_server.url, queue_name=queue_name)
    hosts = [load_scheduler(settings) for _ in range(3)]
    get_settings.cache_clear()
    assert {job.queue_name for job in hosts[0].get_jobs()} == {queue_name}
    connection = redis.Redis.from_url(redis_server.url)
    queue = Queue(queue_name, connection=connection)
    for scheduler in hosts:
        scheduler.register_birth()

    def make_due() -> None:
        for scheduler in hosts:
            for job in scheduler.get_jobs():
                job.next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)

    make_due()
    enqueued = [len(scheduler.enqueue_jobs()) for scheduler in hosts]
    assert enqueued == [3, 0, 0]  # the first to ask leads; the others only keep time
    assert all(not job.should_run() for scheduler in hosts for job in scheduler.get_jobs())
    assert queue.count == 3  # in Redis once, not once per host
    make_due()
    assert [len(scheduler.enqueue_jobs()) for scheduler in hosts] == [3, 0, 0]  # the lease is renewed

    connection.delete(hosts[0].lease_key)  # the leader's host died: its lease ran out
    make_due()
    assert [len(scheduler.enqueue_jobs()) for scheduler in hosts[1:]] == [3, 0]
    assert len(hosts[0].enqueue_jobs()) == 0  # back, it follows the new leader
    hosts[1].register_death()  # a leader that stops cleanly hands the lease on at once
    make_due()
    assert len(hosts[2].enqueue_jobs()) == 3
