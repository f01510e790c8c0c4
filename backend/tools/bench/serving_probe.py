"""What an annotator's ``/predict`` meets while a large sync runs on the same host: a real
``hitl serve`` (gunicorn, the bundled encoder, a published head), asked for one task at a time by
one client, the way the labeling page asks; latencies alone and during the sync's steps, and the
peak memory of each server process (read from /proc, so Linux only)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
    """One client asking the server for one task at a time, latencies kept while it runs."""

    def __init__(self, url: str, port: int) -> None:
        self.url, self.port = url, port
        self._bodies = predict_bodies([f"{TOPICS[i % 4]} (item {i})" for i in range(4000)], 1, AG_CONFIG)
        self._sent = 0

    def measure(self, seconds: float) -> list[float]:
        """Latencies (s) of as many requests as fit in ``seconds``, one after another."""
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        return self._ask_until(stop)

    @contextlib.contextmanager
    def during(self) -> Iterator[list[float]]:
        """Ask throughout the block; the list fills with the latencies of the requests it made."""
        stop, out = threading.Event(), []
        thread = threading.Thread(target=lambda: out.extend(self._ask_until(stop)), daemon=True)
        thread.start()
        try:
            yield out
        finally:
            stop.set()
            thread.join(120)

    def _ask_until(self, stop: threading.Event) -> list[float]:
        latencies = []
        with requests.Session() as session:
            while not stop.is_set():
                body = self._bodies[self._sent % len(self._bodies)]
                self._sent += 1
                started = time.perf_counter()
                response = session.post(self.url + "/predict", json=body, timeout=120)
                response.raise_for_status()
                assert len(response.json()["results"]) == 1, response.text[:300]
                latencies.append(time.perf_counter() - started)
        return latencies

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
