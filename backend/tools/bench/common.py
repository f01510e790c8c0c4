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

FULL_DATA_HINT = (
    "The full datasets are not part of this repository (tests/fixtures/data holds small samples for the tests, "
    "too small for benchmark figures): pass --dataset FOLDER (a folder with train.jsonl and test.jsonl, e.g. "
    "../shared/data/trec), --data DIR (a folder holding the datasets by name) or set HITL_SHARED_DATA."
)


def data_roots(data: str | None = None) -> list[Path]:
    """Where a dataset given by name is looked for: --data if given, else HITL_SHARED_DATA if set, else
    ``../shared/data`` and ``./shared/data`` (from the current folder)."""
    if data:
        return [Path(data).expanduser()]
    if os.environ.get("HITL_SHARED_DATA"):
        return [Path(os.environ["HITL_SHARED_DATA"]).expanduser()]
    return [Path.cwd() / "../shared/data", Path.cwd() / "shared/data"]


def dataset_dir(data: str | None, dataset: str, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """``dataset``: a folder (``../shared/data/trec``, as ``hitl simulate`` takes it) or a name under
    the datasets folder (``trec``: see data_roots). Exits with what is missing, and where it was looked
    for, when the folder or one of its ``splits`` is not there."""
    given = Path(dataset).expanduser()
    if given.is_dir() or len(given.parts) > 1 or dataset.startswith("."):  # a folder was meant
        folder = given
    else:
        roots = data_roots(data)
        found = [root / dataset for root in roots if (root / dataset).is_dir()]
        if not found:
            looked = ", ".join(str(root.resolve()) for root in roots)
            raise SystemExit(
                f"dataset {dataset!r} not found: it is not a folder here, and there is no {dataset}/ "
                f"in {looked}. {FULL_DATA_HINT}"
            )
        folder = found[0]
    missing = [f"{split}.jsonl" for split in splits if not (folder / f"{split}.jsonl").is_file()]
    if missing:
        raise SystemExit(
            f"dataset folder {folder.resolve()} has no {', '.join(missing)} (this needs "
            f"{', '.join(s + '.jsonl' for s in splits)}). {FULL_DATA_HINT}"
        )
    return folder.resolve()


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
    cmd = [
        sys.executable,
        "-m",
        "backend",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
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
