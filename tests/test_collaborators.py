"""The app factory's collaborators: a queue sink brings its queue and audit store, a logging sink none."""

from __future__ import annotations

from backend.server.collaborators import Collaborators
from backend.server.events import LoggingSink, QueueSink
from backend.stores.audit import AuditStore


def test_a_queue_sink_brings_its_queue_and_audit_store(settings):
    queue, audit = object(), AuditStore.from_settings(settings)
    sink = QueueSink(queue, audit)  # type: ignore[arg-type]
    assert Collaborators.of(sink) == Collaborators(sink, queue, audit)  # type: ignore[arg-type]


def test_without_redis_webhooks_are_only_logged(settings):
    assert settings.redis_url is None or settings.redis_url == ""
    parts = Collaborators.from_settings(settings)
    assert isinstance(parts.events, LoggingSink) and parts.queue is None and parts.audit is None
    sink = LoggingSink()
    assert Collaborators.of(sink) == Collaborators(sink)
