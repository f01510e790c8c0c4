import json
import threading

import pytest

from backend.ids import parse_project_id as project_key
from backend.stores.registry import BaselineChanged, Registry, RegistryError
from backend.stores.shared_registry import SharedRegistry
from tests.support.services import postgres_database


@pytest.fixture(params=["files", "postgres"])
def make_registry(request):
    """Each contract below holds for the one-machine registry and for the one hosts share."""
    if request.param == "files":
        yield Registry
        return
    with postgres_database("hitl_registry") as (_, url):
        yield lambda root: SharedRegistry(root, url)


def _writer(payload):
    def write(folder):
        (folder / "weights.bin").write_bytes(payload)
        return {"note": payload.decode()}

    return write


def test_publish_creates_numbered_versions_and_moves_current(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    assert registry.current("3") is None
    first = registry.publish("3.1764000000", _writer(b"a"))
    second = registry.publish("3", _writer(b"b"))
    assert first.startswith("v1-") and second.startswith("v2-")
    assert registry.current("3") == second
    assert registry.versions("3") == [first, second]
    meta = registry.meta("3", second)
    assert meta["parent"] == first and meta["note"] == "b" and meta["project"] == "3"


def test_failed_write_leaves_no_trace(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    good = registry.publish("3", _writer(b"a"))

    def broken(folder):
        (folder / "half.bin").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        registry.publish("3", broken)
    assert registry.current("3") == good
    assert registry.versions("3") == [good]
    assert not list((tmp_path / "3").glob(".staging-*"))


def test_promote_and_unknown_version(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    first = registry.publish("3", _writer(b"a"))
    registry.publish("3", _writer(b"b"))
    registry.promote("3", first)
    assert registry.current("3") == first
    with pytest.raises(RegistryError):
        registry.promote("3", "v9-nothing")


def test_concurrent_publishes_get_distinct_versions(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    made = []
    threads = [
        threading.Thread(target=lambda i=i: made.append(registry.publish("5", _writer(b"%d" % i)))) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8
    assert len(registry.versions("5")) == 8
    assert json.loads((tmp_path / "5" / "versions" / registry.current("5") / "meta.json").read_text())


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", None])
def test_project_keys_are_validated(bad):
    with pytest.raises(ValueError):
        project_key(bad)


def test_publish_is_a_compare_and_swap_on_the_gated_baseline(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    first = registry.publish("3", _writer(b"a"), expected_current=None)
    second = registry.publish("3", _writer(b"b"), expected_current=first)
    with pytest.raises(BaselineChanged) as stale:  # gated against `first`, but `second` serves now
        registry.publish("3", _writer(b"c"), expected_current=first)
    assert (stale.value.expected, stale.value.current) == (first, second)
    assert registry.current("3") == second and registry.versions("3") == [first, second]
    assert not list((tmp_path / "3").glob(".staging-*"))
    assert registry.meta("3", second)["parent"] == first


def test_version_names_are_validated_before_they_touch_the_disk(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    other = registry.publish("2", _writer(b"a"))
    own = registry.publish("3", _writer(b"b"))
    for name in [f"../../2/versions/{other}", f"../2/versions/{other}", "/etc", "v1-x/../../2", "", "v1-"]:
        with pytest.raises(RegistryError, match="not a version name"):
            registry.promote("3", name)
    assert registry.current("3") == own and registry.meta("3", own)["note"] == "b"


def test_stale_staging_is_removed_by_host_and_pid_or_by_age(tmp_path):
    import os
    import socket
    import time

    registry = Registry(tmp_path)
    pdir = tmp_path / "3"
    (pdir / "versions").mkdir(parents=True)
    host = socket.gethostname()
    dead = pdir / f".staging-{host}-999999-1-x"  # this host, a pid that does not exist
    mine = pdir / f".staging-{host}-{os.getpid()}-1-y"  # this process: maybe still writing
    elsewhere = pdir / ".staging-otherhost-1-1-z"  # another container, pid 1: alive as far as we know
    old = pdir / ".staging-otherhost-1-2-w"
    for folder in (dead, mine, elsewhere, old):
        folder.mkdir()
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    registry.publish("3", _writer(b"a"))
    assert sorted(p.name for p in pdir.glob(".staging-*")) == sorted([mine.name, elsewhere.name])


def test_head_refreshes_continue_a_family_until_enough_new_labels():
    from backend.stores.registry import next_family, served_name

    head = {
        "version": "v3-x",
        "family": "v1-x",
        "family_examples": 40,
        "training": {"kind": "head", "examples": 90},
        "spec": {"fingerprint": "f"},
    }
    assert next_family(head, "head", "f", 120, 100) == {"family": "v1-x", "family_examples": 40}
    assert next_family(head, "head", "f", 140, 100) == {"family_examples": 140}  # 100 new labels: a new family
    assert next_family(head, "full", "f", 120, 100) == {"family_examples": 120}  # a fine-tune starts one
    assert next_family(head, "head", "other", 120, 100) == {"family_examples": 120}  # another label space
    assert next_family({**head, "training": {"kind": "full"}}, "head", "f", 120, 100) == {"family_examples": 120}
    assert next_family(None, "head", "f", 10, 100) == {"family_examples": 10}  # the first version
    assert next_family(head, "head", "f", 120, 0) == {"family_examples": 120}  # families off
    # early on a family ends once the labels grew by a quarter: 40 -> 50 joins, 40 -> 51 starts anew
    assert next_family(head, "head", "f", 50, 100, growth=0.25) == {"family": "v1-x", "family_examples": 40}
    assert next_family(head, "head", "f", 51, 100, growth=0.25) == {"family_examples": 51}
    assert served_name(head) == "v1-x" and served_name({"version": "v2-y"}) == "v2-y"


def test_a_new_family_is_named_after_its_first_version(tmp_path, make_registry):
    registry = make_registry(tmp_path)
    first = registry.publish("3", _writer(b"a"))
    second = registry.publish("3", lambda folder: {"family": first, "note": "refresh"})
    assert registry.meta("3", first)["family"] == first
    assert registry.served("3") == first and registry.current("3") == second
    assert registry.served("9") is None


def test_a_family_lasts_at_least_its_minimum_age():
    """Issue 26: prediction tabs piled up (1 to 9 per task in 90 labels); a family is a version name Label
    Studio keeps, so one begins at most every HITL_VERSION_FAMILY_MIN_S."""
    from backend.stores.registry import next_family

    head = {
        "version": "v3-x",
        "family": "v1-x",
        "family_examples": 40,
        "family_started": 1000.0,
        "training": {"kind": "head", "examples": 90},
        "spec": {"fingerprint": "f"},
    }
    young = next_family(head, "head", "f", 140, 100, min_age_s=120, now=1100.0)
    assert young == {"family": "v1-x", "family_examples": 40, "family_started": 1000.0}
    assert next_family(head, "head", "f", 140, 100, min_age_s=120, now=1121.0) == {
        "family_examples": 140,
        "family_started": 1121.0,
    }
    fine_tune = next_family(head, "full", "f", 140, 100, min_age_s=120, now=1100.0)
    assert fine_tune["family_started"] == 1100.0  # a fine-tune starts one whatever its age
    # a model plug-in's refits form families too, and never join a head's
    plugin = {**head, "training": {"kind": "plugin", "examples": 90}}
    assert next_family(plugin, "plugin", "f", 120, 100)["family"] == "v1-x"
    assert "family" not in next_family(head, "plugin", "f", 120, 100)
