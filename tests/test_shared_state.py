"""Hosts that share only PostgreSQL: what one host publishes or decides, another with an empty
data folder sees and loads whole; a writer that dies mid-publish leaves nothing visible; the
queue state and the sync lock are the same for every host. Real PostgreSQL on 127.0.0.1:5432."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from backend.settings import Settings
from backend.stores.documents import Documents
from backend.stores.queue_state import SyncState, queue_state_location
from backend.stores.registry import Registry, RegistryError
from backend.stores.shared_registry import SharedRegistry
from tests.support.services import ROOT, postgres_database


@pytest.fixture
def database_url():
    with postgres_database("hitl_shared") as (_, url):
        yield url


def _model(payload: bytes, size: int = 0):
    def write(folder):
        (folder / "head.safetensors").write_bytes(payload + b"\0" * size)
        (folder / "encoder").mkdir()
        (folder / "encoder" / "config.json").write_text('{"hidden": 8}')
        return {"note": payload.decode()}

    return write


def test_a_host_with_an_empty_folder_serves_what_another_published(tmp_path, database_url):
    first_host = SharedRegistry(tmp_path / "host-a", database_url)
    second_host = SharedRegistry(tmp_path / "host-b", database_url)
    version = first_host.publish("4", _model(b"weights", size=9 * 2**20))  # more than two chunks
    assert second_host.current("4") == version and second_host.versions("4") == [version]
    assert second_host.meta("4", version)["note"] == "weights"
    assert not (tmp_path / "host-b").exists()  # nothing fetched before it is needed
    folder = second_host.version_dir("4", version)
    original = first_host.version_dir("4", version)
    for name in ("head.safetensors", "encoder/config.json", "meta.json"):
        assert (folder / name).read_bytes() == (original / name).read_bytes(), name
    assert second_host.projects() == [4]


def test_decisions_made_on_one_host_hold_on_every_host(tmp_path, database_url):
    a, b = (SharedRegistry(tmp_path / h, database_url) for h in ("a", "b"))
    a.publish("4", _model(b"x"))
    a.set_model("4", "examples.tfidf_logreg.model:TfidfLogReg")
    a.suspend_routing("4", "v1-x", "production precision 80% < target 90%")
    a.set_audit_share("4", 0.1, "drift alarm")
    assert b.model("4") == "examples.tfidf_logreg.model:TfidfLogReg"
    assert b.routing_suspended("4", "v1-x") == "production precision 80% < target 90%"
    assert b.routing_suspended("4", "v2-y") is None
    assert b.audit_share("4") == 0.1
    assert b.model("5") == "" and b.audit_share("5") is None


def test_a_writer_killed_before_its_commit_leaves_nothing_visible(tmp_path, database_url):
    """A process that dies after uploading a version's files, before the transaction that names it."""
    host = SharedRegistry(tmp_path / "a", database_url)
    serving = host.publish("4", _model(b"serving"))
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from backend.stores.shared_registry import SharedRegistry
        registry = SharedRegistry(Path({str(tmp_path / "dying")!r}), {database_url!r})
        registry._upload(4, "dead-writer-upload", Path({str(tmp_path / "files")!r}))
        os._exit(9)  # as kill -9 would: no cleanup, no commit
        """
    )
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "head.safetensors").write_bytes(b"half a model")
    died = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    other = SharedRegistry(tmp_path / "b", database_url)
    assert other.current("4") == serving and other.versions("4") == [serving]
    count = other.db.run(
        lambda conn: conn.execute("SELECT count(*) FROM hitl_uploads WHERE upload = 'dead-writer-upload'").fetchone()
    )
    assert count[0] == 1  # left by the dead writer, referenced by no version
    other.db.run(lambda conn: conn.execute("UPDATE hitl_uploads SET started_at = 0"))  # as if hours ago
    other.publish("4", _model(b"next"))  # publishing clears what dead writers left
    left = other.db.run(
        lambda conn: conn.execute("SELECT count(*) FROM hitl_version_files WHERE upload = 'dead-writer-upload'")
    ).fetchone()
    assert left[0] == 0


def test_retention_keeps_the_last_n_the_serving_version_and_its_parent(tmp_path, database_url):
    registry = SharedRegistry(tmp_path / "a", database_url, keep=1)
    v1, v2 = (registry.publish("4", _model(b"%d" % i)) for i in (1, 2))
    assert _kept(registry) == {v1, v2}  # v2 serves; v1 is its parent, the rollback target
    registry.keep = 2
    v3 = registry.publish("4", _model(b"3"))
    assert _kept(registry) == {v2, v3}
    registry.promote("4", v2)  # a rollback
    v4, v5 = (registry.publish("4", _model(b"%d" % i), make_current=False) for i in (4, 5))
    assert _kept(registry) == {v2, v4, v5}  # the serving version, and the last two
    assert registry.versions("4") == [v1, v2, v3, v4, v5]  # every version's metadata stays
    assert registry.meta("4", v3)["note"] == "3"
    with pytest.raises(RegistryError, match="HITL_REGISTRY_KEEP"):
        SharedRegistry(tmp_path / "b", database_url).version_dir("4", v3)
    with pytest.raises(RegistryError, match="with its files"):
        registry.promote("4", v1)


def _kept(registry: SharedRegistry) -> set[str]:
    rows = registry.db.run(lambda conn: conn.execute("SELECT version FROM hitl_versions WHERE NOT pruned").fetchall())
    return {row[0] for row in rows}


def test_the_settings_choose_the_shared_stores(tmp_path, database_url):
    shared = Settings(database_url=database_url, registry_dir=tmp_path / "cache", data_dir=tmp_path)
    alone = Settings(registry_dir=tmp_path / "registry", data_dir=tmp_path)
    assert isinstance(Registry.from_settings(shared), SharedRegistry)
    assert type(Registry.from_settings(alone)) is Registry
    assert queue_state_location(shared.data_dir, shared.database_url) == database_url
    assert queue_state_location(alone.data_dir, alone.database_url) == tmp_path / "sync-state.sqlite3"


def test_the_queue_state_is_the_same_for_every_host(database_url):
    one, other = SyncState(database_url), SyncState(database_url)
    one.put(4, [(10, "v1-a", "h1", 0, 0.5, 0.2, 0.7, "preselect", "World"), (11, "v1-a", "h2", 1, None, 0.9, 0.6)])
    one.put(4, [(10, "v2-b", "h1", 0, 0.25, 0.1, 0.8, "preselect", "World")])  # rewritten in place
    assert other.get(4) == {
        10: ("v2-b", "h1", 0, 0.25, 0.8, "preselect", "World"),
        11: ("v1-a", "h2", 1, None, 0.6, None, None),
    }
    one.replaced(4, "v1-a", 100.0)
    assert other.replaced_at(4) == {"v1-a": 100.0}
    assert other.prune(4, {10}, "enc") == 1 and one.explored(4, "enc") == {1}
    assert other.prune(4, {10}, "enc") == 0  # explored clusters are recorded once
    assert other.mean_confidence(4) == {"v2-b": (0.8, 1)}


def test_one_sync_per_project_across_hosts(tmp_path, database_url):
    """The sync's lock (``stores/locks.py``) is PostgreSQL's: a second host waits for the first."""
    holder = textwrap.dedent(
        f"""
        import sys, time
        from types import SimpleNamespace
        from backend.stores.locks import exclusive
        with exclusive(SimpleNamespace(database_url={database_url!r}), "sync-4"):
            print("held", flush=True)
            time.sleep(3)
        """
    )
    first = subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "held"
    from types import SimpleNamespace

    from backend.stores.locks import exclusive

    started = time.monotonic()
    with exclusive(SimpleNamespace(database_url=database_url, data_dir=tmp_path), "sync-4"):
        waited = time.monotonic() - started
    assert first.wait(30) == 0 and 1.5 < waited < 10, waited
    first = subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "held"
    first.kill()  # a host that dies holding it frees it
    first.wait(10)
    started = time.monotonic()
    with exclusive(SimpleNamespace(database_url=database_url, data_dir=tmp_path), "sync-4"):
        assert time.monotonic() - started < 2


def test_the_sync_documents_are_the_same_for_every_host(tmp_path, database_url):
    """The drift reference and the cluster centroids: one host's sync takes them, the next reuses them."""
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    one, other = Documents.for_settings(settings, "drift"), Documents(database_url, "drift")
    assert other.read(4) is None
    one.write(4, {"encoder": "e", "checked_up_to": 10, "probes": [3]})
    assert other.read(4) == {"encoder": "e", "checked_up_to": 10, "probes": [3]}
    assert Documents(database_url, "clusters").read(4) is None  # kinds apart
    assert not (tmp_path / "drift").exists()
    alone = Documents.for_settings(Settings(data_dir=tmp_path), "drift")
    alone.write(4, {"encoder": "f"})
    assert alone.read(4) == {"encoder": "f"} and (tmp_path / "drift" / "4.json").exists()


def test_ready_says_when_this_host_cannot_reach_the_shared_database(settings, database_url):
    """A load balancer takes a host out when its /ready fails: one cut off from PostgreSQL must say so."""
    from backend.server import create_app
    from backend.serving.predictor import Predictor

    for url, expected in ((database_url, "ok"), ("postgresql://postgres@127.0.0.1:9/none", "unavailable")):
        predictor = Predictor(settings.model_copy(update={"database_url": url}))
        predictor.start(background=False)
        assert isinstance(predictor.registry, SharedRegistry)
        answer = create_app(predictor.settings, predictor=predictor).test_client().get("/ready")
        assert expected in answer.json["database"]
        assert answer.status_code == 503  # no Redis configured here either way; with it, the database decides
        assert "postgres@" not in answer.json["database"]  # no URL in the answer


def test_hosts_that_start_together_create_the_shared_tables_once(tmp_path, database_url):
    """Every store creates its tables on first use; concurrent CREATE ... IF NOT EXISTS can still
    collide in PostgreSQL (a worker of a two-host run died of it), so they take turns."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from backend.stores.audit import AuditStore
        from backend.stores.documents import Documents
        from backend.stores.queue_state import SyncState
        from backend.stores.shared_registry import SharedRegistry
        AuditStore({database_url!r}).versions(1)
        SharedRegistry(Path({str(tmp_path)!r}), {database_url!r}).current(1)
        SyncState({database_url!r}).get(1)
        Documents({database_url!r}, "drift").read(1)
        """
    )
    starts = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(8)]
    failures = [p.stderr.read().decode()[-300:] for p in starts if p.wait(120) != 0]
    assert not failures, failures[0]


def _gives_way(settings: Settings) -> None:
    """While another process holds the project's sync, a worker's sync returns at once and leaves
    word; once the holder lets go, the lock is free; a holder that lets go while word is being left
    is not missed (the lock is tried once more)."""
    from backend.query.sync import sync_project

    holder = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from backend.settings import Settings
        from backend.stores.locks import exclusive
        settings = Settings(database_url={settings.database_url!r}, data_dir=Path({str(settings.data_dir)!r}))
        with exclusive(settings, "sync-4"):
            print("held", flush=True)
            sys.stdin.readline()
        """
    )
    first = subprocess.Popen(
        [sys.executable, "-c", holder], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert first.stdout.readline().strip() == "held"
    words: list[float] = []
    started = time.monotonic()
    # nothing of Label Studio, the cache or the registry is touched when the sync gives way
    summary = sync_project(settings, None, None, None, 4, when_busy=lambda: words.append(time.monotonic()))  # type: ignore[arg-type]
    assert time.monotonic() - started < 2 and len(words) == 1
    assert (
        summary.gave_way
        and summary.line() == "project 4: another sync of this project is running; a new one follows it"
    )

    def holder_lets_go() -> None:  # the holder ends while word is being left
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.wait(30) == 0

    from backend.stores.locks import exclusive

    with exclusive(settings, "sync-4", or_else=holder_lets_go) as held:
        assert held


def test_a_workers_sync_gives_way_to_a_running_one_on_this_host(tmp_path):
    _gives_way(Settings(data_dir=tmp_path))


def test_a_workers_sync_gives_way_to_a_running_one_on_another_host(tmp_path, database_url):
    _gives_way(Settings(data_dir=tmp_path, database_url=database_url))


def test_word_left_for_a_running_sync_is_read_once(redis_server):
    import redis

    from backend.jobs.queue import RetrainQueue

    queue = RetrainQueue(Settings(redis_url=redis_server.url), redis.Redis.from_url(redis_server.url))
    assert not queue.sync_after_this_one(41)
    queue.follow_running_sync(41)
    queue.follow_running_sync(41)  # several gave way: one sync follows
    assert queue.sync_after_this_one(41) and not queue.sync_after_this_one(41)
    assert not queue.sync_after_this_one(42)


def test_a_sync_that_ends_requests_the_one_that_gave_way_and_redis_away_costs_only_that(redis_server, caplog):
    import redis
    from rq import Queue

    from backend.jobs.queue import RetrainQueue
    from backend.jobs.sync_job import _follow_up
    from backend.tools.bench.common import free_port

    settings = Settings(redis_url=redis_server.url, queue_name="follow-up-test")
    queue = RetrainQueue(settings, redis.Redis.from_url(redis_server.url))
    _follow_up(queue, 43)  # nobody gave way: nothing requested
    assert Queue("follow-up-test", connection=queue.connection).count == 0
    queue.follow_running_sync(43)
    _follow_up(queue, 43)
    jobs = Queue("follow-up-test", connection=queue.connection).jobs
    assert [(j.kwargs["project_id"], j.kwargs["kind"]) for j in jobs] == [(43, "sync")]
    away = RetrainQueue(settings, redis.Redis(port=free_port(), socket_connect_timeout=1))
    _follow_up(away, 43)  # no exception: the sync that ended keeps its result
    assert "could not check for a sync waiting on this one (ConnectionError)" in caplog.text
