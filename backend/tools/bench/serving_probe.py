"""What an annotator's ``/predict`` meets while a large sync runs on the same host: a real
``hitl serve`` (gunicorn, the bundled encoder, a published head), asked for one task at a time by
one client, the way the labeling page asks; latencies alone and during the sync's steps, and the
peak memory of each server process (read from /proc, so Linux only)."""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import requests

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.candidates import fit_head, publish_head
from backend.models.encoder import encoder_from_settings
from backend.settings import Settings
from backend.stores.registry import Registry
from backend.tools.bench.common import backend_server, free_port
from backend.tools.bench.load import predict_bodies
from backend.tools.bench.predict import AG_CONFIG

TOPICS = (
    "markets rallied as the central bank held rates",
    "the striker scored twice in the final",
    "a new chip doubles battery life",
    "leaders met to discuss the ceasefire",
)


class PredictProbe:
    """One client asking the server for one task at a time. It runs in a process of its own, so
    the work it runs beside (in this process) and the client never contend for one interpreter."""

    def __init__(self, url: str, port: int) -> None:
        self.url, self.port = url, port

    def measure(self, seconds: float) -> list[float]:
        """Latencies (s) of as many requests as fit in ``seconds``, one after another."""
        with self.during() as latencies:
            time.sleep(seconds)
        return latencies

    @contextlib.contextmanager
    def during(self) -> Iterator[list[float]]:
        """Ask throughout the block; the list fills, as it ends, with the latencies of the requests made."""
        spawn = multiprocessing.get_context("spawn")
        ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
        client = spawn.Process(target=_ask_until, args=(self.url, ready, stop, results), daemon=True)
        client.start()
        if not ready.wait(120):
            client.kill()
            raise RuntimeError("the /predict client did not start")
        out: list[float] = []
        try:
            yield out
        finally:
            stop.set()
            found = results.get(timeout=180)
            client.join(30)
            if isinstance(found, str):
                raise RuntimeError(f"/predict failed during the benchmark: {found}")
            out.extend(found)

    def peak_rss_gib(self) -> float:
        """The largest peak resident memory of the server's processes (gunicorn's master and workers)."""
        peaks = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")
                text = status.read_text()
            except OSError:
                continue
            if b"serve" in cmdline and str(self.port).encode() in cmdline:
                peaks += [int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")]
        return max(peaks) / 2**20 if peaks else float("nan")


def _ask_until(url: str, ready: Any, stop: Any, results: Any) -> None:
    """The client's process: one task per request until ``stop``; its latencies, or what failed."""
    bodies = predict_bodies([f"{TOPICS[i % 4]} (item {i})" for i in range(4000)], 1, AG_CONFIG)
    latencies: list[float] = []
    try:
        with requests.Session() as session:
            ready.set()
            while not stop.is_set():
                body = bodies[len(latencies) % len(bodies)]
                started = time.perf_counter()
                response = session.post(url + "/predict", json=body, timeout=120)
                response.raise_for_status()
                if len(response.json()["results"]) != 1:
                    raise ValueError(f"an incomplete answer: {response.text[:300]}")
                latencies.append(time.perf_counter() - started)
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        return
    results.put(latencies)


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[PredictProbe]:
    """A server with a head on the bundled encoder (fitted on a few synthetic texts: latency and
    memory do not depend on what it learned), warmed up."""
    spec = parse_label_config(AG_CONFIG)
    encoder = encoder_from_settings(settings)
    examples = [Example(f"{TOPICS[i % 4]} (example {i})", (spec.labels[i % 4],), i) for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry")
        publish_head(registry, "1", spec, encoder, fit_head(encoder, spec, examples), examples)
        env = {
            "HITL_REGISTRY_DIR": str(registry.root),
            "HITL_MODEL_NAME": encoder.name_or_path,
            "HITL_DATA_DIR": tmp,
            "HITL_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        with backend_server(env, port, workers=1) as url:
            probe = PredictProbe(url, port)
            probe.measure(3)  # the version loads on the first request
            yield probe


def percentiles_ms(latencies: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    if not latencies:
        return float("nan"), float("nan")
    return float(np.percentile(latencies, 50) * 1000), float(np.percentile(latencies, 99) * 1000)
