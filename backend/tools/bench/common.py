"""Shared pieces of the benchmarks: datasets, free ports, a server process, timing."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests


def dataset_dir(data: str | None, dataset: str) -> Path:
    """``dataset``: a folder (``../shared/data/trec``, as ``hitl simulate`` takes it) or a name under
    the datasets folder (``trec``)."""
    given = Path(dataset)
    if (given / "train.jsonl").exists():
        return given.resolve()
    return data_dir(data) / dataset


def data_dir(explicit: str | None = None) -> Path:
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("HITL_SHARED_DATA"):
        candidates.append(Path(os.environ["HITL_SHARED_DATA"]))
    candidates += [Path.cwd() / "../shared/data", Path.cwd() / "shared/data"]
    for candidate in candidates:
        if (candidate / "ag_news" / "test.jsonl").exists():
            return candidate.resolve()
    raise SystemExit("datasets not found: pass --data DIR or set HITL_SHARED_DATA (a folder with ag_news/, trec/)")


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


@contextlib.contextmanager
def backend_server(env: dict[str, str], port: int, workers: int = 1) -> Iterator[str]:
    """`hitl serve` as a real process (gunicorn) on 127.0.0.1:port."""
    full_env = {**os.environ, **env}
    cmd = [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 60, process)
        deadline = time.monotonic() + 120
        while not requests.get(url + "/health", timeout=2).json().get("encoder_ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the server's encoder did not load within 120s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def median_time(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
