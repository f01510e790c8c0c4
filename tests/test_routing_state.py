"""The routing audit's switches (``routing.json``) fail closed: a truncated or hand-edited file never
switches auto_accept back on, and the file is written durably (fsync) like ``CURRENT``."""

from __future__ import annotations

import json
import os

import pytest

from backend.stores.registry import Registry


@pytest.mark.parametrize("text", ['{"v3-a": {"reason": "humans chan', "", "[]", '{"v3-a": "off"}', "\x00\x00"])
def test_an_unreadable_routing_state_switches_auto_accept_off(tmp_path, text):
    registry = Registry(tmp_path)
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "routing.json").write_text(text)
    for name in ["v3-a", "v4-b"]:  # the one it held, and any other: it may have held them all
        assert "auto_accept is off" in registry.routing_suspended(5, name)
    # the next switch keeps the unreadable file aside and keeps every version off
    registry.suspend_routing(5, "v4-b", "humans changed 8 of 40")
    assert len(list((tmp_path / "5").glob("routing.json.unreadable-*"))) == 1
    assert registry.routing_suspended(5, "v4-b") == "humans changed 8 of 40"
    assert "auto_accept is off for every version" in registry.routing_suspended(5, "v3-a")


def test_no_routing_state_means_nothing_switched_off(tmp_path):
    registry = Registry(tmp_path)
    assert registry.routing_suspended(5, "v3-a") is None
    registry.suspend_routing(5, "v3-a", "humans changed 8 of 40")
    assert registry.routing_suspended(5, "v4-b") is None
    assert json.loads((tmp_path / "5" / "routing.json").read_text())["v3-a"]["reason"] == "humans changed 8 of 40"


def test_the_routing_state_is_on_disk_before_it_is_visible(tmp_path, monkeypatch):
    registry = Registry(tmp_path)
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    registry.suspend_routing(5, "v3-a", "humans changed 8 of 40")
    folder = str((tmp_path / "5").resolve())
    assert any(p.startswith(folder + "/.routing.json.") for p in synced)  # the file, before its rename
    assert folder in synced  # and the rename
    assert not list((tmp_path / "5").glob(".routing.json.*"))
