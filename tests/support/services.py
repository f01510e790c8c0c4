"""Real services for tests: Redis, our backend server and RQ workers as processes, Label Studio."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from backend.tools.bench.common import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A child process of the test run with its log file, stopped (or killed) on demand."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()


def hitl(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend", *args]


def start_backend(env: dict[str, str], log_dir: Path, prefix: Sequence[str] = ()) -> tuple[Proc, str]:
    """``prefix``: what the command runs under (``as_host``)."""
    port = free_port()
    proc = Proc("backend", [*prefix, *hitl("serve", "--host", "127.0.0.1", "--port", str(port))], env, log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 60, proc.process)
        wait_until(lambda: requests.get(url + "/health", timeout=2).json()["encoder_ready"], 120, "encoder loaded")
    except Exception as exc:
        proc.stop()
        raise RuntimeError(f"backend did not start: {exc}\n{proc.log_tail()}") from exc
    return proc, url


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker", prefix: Sequence[str] = ()) -> Proc:
    return Proc(name, [*prefix, *hitl("worker")], env, log_dir)


def as_host(name: str) -> list[str]:
    """A command prefix that runs a process under its own host name (a UTS namespace, as a container
    or another machine has), so what keys on the host name (the workers' liveness records) sees
    another host. Needs ``unshare --uts`` (root, or a user namespace); where that is refused, the
    process keeps this host's name ([]) and ``host_names_apart()`` says so."""
    return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$0" "$@"'] if host_names_apart() else []


@functools.cache
def host_names_apart() -> bool:
    """Whether processes can be given host names of their own here (``as_host``)."""
    import shutil

    return (
        bool(shutil.which("unshare"))
        and subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0
    )


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}" + (f": {last_error}" if last_error else ""))


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def postgres_database(prefix: str = "hitl_test"):
    """A fresh database on this machine's PostgreSQL for one test: (admin connection, its URL).
    Fails (never skips) when PostgreSQL is not there."""
    import uuid

    import psycopg
    import pytest

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed for this test: {exc}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield admin, f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.OperationalError:  # the test restarted PostgreSQL under this connection
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=30) as again:
                again.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
