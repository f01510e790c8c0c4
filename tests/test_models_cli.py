import json

from backend.cli.main import main
from backend.stores.registry import Registry


def _publish(registry, note):
    return registry.publish("4", lambda folder: {"training": {"kind": "head", "examples": note}, "metrics": {}})


def test_list_promote_rollback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HITL_REGISTRY_DIR", str(tmp_path))
    from backend.settings import get_settings

    get_settings.cache_clear()
    registry = Registry(tmp_path)
    first, second = _publish(registry, 10), _publish(registry, 20)

    assert main(["models", "list", "--project", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["serving"], r["examples"]) for r in rows] == [(first, False, 10), (second, True, 20)]

    assert main(["models", "rollback", "--project", "4"]) == 0
    assert registry.current("4") == first
    assert main(["models", "rollback", "--project", "4"]) == 1  # the first version has no parent
    assert main(["models", "promote", "--project", "4", second]) == 0
    assert registry.current("4") == second
    assert main(["models", "promote", "--project", "4", "v99-none"]) == 1
    assert "no version" in capsys.readouterr().out
    assert main(["models", "list", "--project", "4"]) == 0
    assert "* " + second in capsys.readouterr().out
    get_settings.cache_clear()


def test_rollback_asks_a_worker_to_reorder_the_queue(tmp_path, monkeypatch, capsys, redis_server):
    import redis
    from rq import Queue

    from backend.settings import get_settings

    for key, value in {
        "HITL_REGISTRY_DIR": str(tmp_path),
        "HITL_REDIS_URL": redis_server.url,
        "HITL_QUEUE_NAME": "rollback-test",
        "HITL_DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    registry = Registry(tmp_path)
    first, _ = _publish(registry, 10), _publish(registry, 20)
    assert main(["models", "rollback", "--project", "4"]) == 0
    assert registry.current("4") == first and "queue re-order queued" in capsys.readouterr().out
    jobs = Queue("rollback-test", connection=redis.Redis.from_url(redis_server.url)).jobs
    assert [(j.func_name, j.kwargs["project_id"], j.kwargs["kind"]) for j in jobs] == [
        ("backend.jobs.sync_job.sync_job", 4, "sync")
    ]
    # traversal through a version name is refused before it touches the disk
    assert main(["models", "promote", "--project", "4", "../../2/versions/" + first]) == 1
    assert "not a version name" in capsys.readouterr().out
    get_settings.cache_clear()


def test_report_of_an_unknown_project_says_so(tmp_path, monkeypatch, capsys):
    from backend.settings import get_settings

    monkeypatch.setenv("HITL_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert main(["report", "--project", "99", "--out", str(tmp_path / "r.html")]) == 1
    assert "project 99 has no versions" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    get_settings.cache_clear()
