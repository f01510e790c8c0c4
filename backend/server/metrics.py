"""Prometheus metrics at /metrics: what the server does, and what annotators and the gate decided.

Request latency, batch sizes, predictions per model version and task errors are counted in the
serving process. Correction rate per version (the share of pre-annotations annotators changed),
queue depth and gate decisions are read at scrape time from the audit store and Redis, which the
workers write, so every gunicorn worker reports the same figures for them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from backend.jobs.queue import RetrainQueue
    from backend.stores.audit import AuditStore

log = logging.getLogger(__name__)


class ServerMetrics:
    def __init__(
        self, audit: AuditStore | None = None, queue: RetrainQueue | None = None, max_series: int = 1000
    ) -> None:
        self.registry = CollectorRegistry()
        self.max_series = max_series  # per-project series kept; the least recently updated are dropped
        self._series: OrderedDict[tuple[Counter, tuple[str, ...]], None] = OrderedDict()
        self.latency = Histogram(
            "hitl_request_seconds",
            "Request latency by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 100),
        )
        self.batch = Histogram(
            "hitl_predict_batch_tasks",
            "Tasks per /predict request.",
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
        )
        self.predictions = Counter(
            "hitl_predictions",
            "Predictions served, by project and model version.",
            ["project", "model_version"],
            registry=self.registry,
        )
        self.task_errors = Counter(
            "hitl_task_errors", "Tasks that could not be read.", ["project"], registry=self.registry
        )
        self.webhooks_dropped = Counter(
            "hitl_webhooks_dropped", "Webhooks for project ids Label Studio did not confirm.", registry=self.registry
        )
        self.registry.register(_StoreCollector(audit, queue))

    def observe_predictions(self, project: int, results: list[dict[str, Any]]) -> None:
        self.batch.observe(len(results))
        for item in results:
            if "result" in item:
                self._inc(self.predictions, str(project), str(item.get("model_version")))
            else:
                self._inc(self.task_errors, str(project))

    def _inc(self, counter: Counter, *labels: str) -> None:
        """Count, keeping at most ``max_series`` labelled series (a thousand projects cannot grow
        the server's memory or /metrics without bound)."""
        counter.labels(*labels).inc()
        key = (counter, labels)
        self._series[key] = None
        self._series.move_to_end(key)
        while len(self._series) > self.max_series:
            (old_counter, old_labels), _ = self._series.popitem(last=False)
            old_counter.remove(*old_labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, audit: AuditStore | None, queue: RetrainQueue | None) -> None:
        self.audit = audit
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.audit is not None:
            try:
                yield from self._audit_metrics()
            except Exception as exc:  # a scrape must not fail because a store is busy
                log.warning("audit metrics unavailable: %s", exc)
        if self.queue is not None:
            depth = GaugeMetricFamily("hitl_queue_depth", "Jobs waiting, by queue.", labels=["queue"])
            durations = GaugeMetricFamily(
                "hitl_retrain_last_seconds",
                "Duration of the last retrain, by project, kind and outcome.",
                labels=["project", "kind", "outcome"],
            )
            try:
                for q in (self.queue.queue, self.queue.slow_queue):
                    depth.add_metric([q.name], q.count)
                for labels, seconds in sorted(self.queue.durations().items()):
                    durations.add_metric(list(labels), seconds)
                yield depth
                yield durations
            except Exception as exc:
                log.warning("queue metrics unavailable: %s", exc)

    def _audit_metrics(self) -> Iterator[GaugeMetricFamily]:
        rate = GaugeMetricFamily(
            "hitl_correction_rate",
            "Share of pre-annotations annotators changed, by model version.",
            labels=["project", "model_version"],
        )
        for row in self.audit.correction_rates():
            rate.add_metric([str(row["project_id"]), str(row["model_version"])], float(row["rate"]))
        yield rate
        versions = GaugeMetricFamily(
            "hitl_model_versions", "Candidate versions by gate decision.", labels=["project", "kind", "published"]
        )
        for row in self.audit.version_counts():
            versions.add_metric(
                [str(row["project_id"]), str(row["kind"]), str(bool(row["published"])).lower()], float(row["n"])
            )
        yield versions
        drift = GaugeMetricFamily(
            "hitl_drift_alarm",
            "1 when the project's latest check of newly imported tasks or of /predict's inputs found drift, else 0.",
            labels=["project"],
        )
        alarms: dict[int, bool] = {}
        for row in self.audit.latest_drift_checks():
            alarms[int(row["project_id"])] = alarms.get(int(row["project_id"]), False) or bool(row["alarm"])
        for project, alarm in sorted(alarms.items()):
            drift.add_metric([str(project)], float(alarm))
        yield drift
