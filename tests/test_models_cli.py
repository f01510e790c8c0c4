import json

from backend.cli import main
from backend.registry import Registry


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
