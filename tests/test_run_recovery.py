"""`kill -9` of `hitl run` leaves nothing running, and the next run comes up clean on the same data
folder; a run never takes over a folder whose processes (or whose Redis) still live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests

from backend.services.children import start_time
from backend.services.embedded_redis import EmbeddedRedis, RedisUnavailable
from backend.services.supervisor import AlreadyRunning, hold_run_lock
from backend.tools.bench.common import free_port, wait_http
from tests.support.payloads import annotation_event
from tests.support.services import ROOT, wait_until


def _descendants(root: int) -> set[int]:
    """Every process below ``root``, from /proc (psutil may be absent)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    return start_time(pid) is not None


def _run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "run"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def workers() -> int:
        alive = requests.get(url + "/ready", timeout=5).json().get("workers")
        return alive if isinstance(alive, int) else 0

    try:
        wait_http(url + "/health", 90, process)
        wait_until(lambda: workers() >= 2, 90, "/ready counting the fast and the slow worker")
    except Exception as exc:
        raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_kill_9_of_hitl_run_leaves_nothing_running_and_the_next_run_comes_up_clean(tmp_path, tiny_encoder_dir):
    port = free_port()
    env = {
        **os.environ,
        "HITL_PORT": str(port),
        "HITL_DATA_DIR": str(tmp_path / "data"),
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    env.pop("HITL_REDIS_URL", None)
    url, log = f"http://127.0.0.1:{port}", tmp_path / "run.log"
    socket = tmp_path / "data" / "redis" / "redis.sock"
    first = _run(env, log)
    second = None
    children: set[int] = set()
    try:
        _up(url, first, log)
        children = _descendants(first.pid)
        assert len(children) >= 5, children  # Redis, two workers, the scheduler, the server (and theirs)
        os.kill(first.pid, signal.SIGKILL)  # the supervisor only: no clean-up of its own runs
        first.wait()
        wait_until(lambda: not [p for p in children if _alive(p)], 30, "every process of the killed run gone")
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=2)  # no orphaned server keeps answering Label Studio

        second = _run(env, log)
        _up(url, second, log)
        assert redis.Redis(unix_socket_path=str(socket)).ping()
        answer = requests.post(url + "/webhook", json=annotation_event(project=3), timeout=5).json()
        assert answer["status"] == "dropped"  # the stack answers (no Label Studio here to confirm the project)
        lock = json.loads((tmp_path / "data" / "run.lock").read_text())
        assert lock["pid"] == second.pid and {"redis", "server", "scheduler", "worker-slow"} <= set(lock["processes"])
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
        for pid in children:  # on failure: the first run's orphans, by the pids recorded above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert second.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert not [p for p in _descendants(second.pid) if _alive(p)]


def test_a_free_lock_is_not_taken_while_a_dead_runs_processes_live(tmp_path):
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        lock = {"pid": 999999, "processes": {"redis": [leftover.pid, start_time(leftover.pid)]}}
        (tmp_path / "run.lock").write_text(json.dumps(lock))
        with pytest.raises(AlreadyRunning, match=rf"left redis \(pid {leftover.pid}\) running.*kill {leftover.pid}"):
            hold_run_lock(tmp_path, wait_s=0.5)
    finally:
        leftover.kill()
        leftover.wait()
    held = hold_run_lock(tmp_path, wait_s=0.5)  # gone: the folder is free
    assert json.loads((tmp_path / "run.lock").read_text()) == {"pid": os.getpid(), "processes": {}}
    held.handle.close()


def test_an_embedded_redis_never_starts_over_a_live_ones_socket(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as live:
        with pytest.raises(RedisUnavailable, match="already answers"):
            EmbeddedRedis(tmp_path / "redis").start()
        assert redis.Redis.from_url(live.url).ping()  # its socket is still there, still the live one
    again = EmbeddedRedis(tmp_path / "redis").start()  # a dead server's socket file is no obstacle
    again.stop()


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_ctrl_c_stops_the_pieces_in_order_redis_last(tmp_path, tiny_encoder_dir):
    """Ctrl-C signals the terminal's process group: only the supervisor may get it (Redis must not die
    first), and it stops the server, the workers, the scheduler, then Redis, one line each."""
    port = free_port()
    env = {
        **os.environ,
        "HITL_PORT": str(port),
        "HITL_DATA_DIR": str(tmp_path / "data"),
        "HITL_MODEL_NAME": str(tiny_encoder_dir),
        "HITL_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    env.pop("HITL_REDIS_URL", None)
    url, log = f"http://127.0.0.1:{port}", tmp_path / "run.log"
    run = _run(env, log)
    children: set[int] = set()
    try:
        _up(url, run, log)
        children = _descendants(run.pid)
        os.killpg(run.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        assert run.wait(timeout=90) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    stops = [line.split("stopped ", 1)[1].split(" ", 1)[0] for line in output.splitlines() if " stopped " in line]
    assert stops == ["server", "worker-0", "worker-slow", "scheduler", "embedded"], output[-3000:]
    assert "Traceback" not in output and "lost Redis" not in output and "waiting for Redis" not in output
    assert not [p for p in children if _alive(p)]
