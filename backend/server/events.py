"""Label Studio webhook events: ``/webhook`` and ``/train`` validate them into one small shape and
hand them to a sink, which turns training events into coalesced retrains (``jobs/queue.py``).

Payload shapes (label_studio/webhooks/models.py, 1.23): ``{"action": ..., "project": {...},
"annotation": {...}, "task": {...}}``; ANNOTATIONS_DELETED carries ``"annotations": [{"id"}]``;
Label Studio's own training trigger is ``{"action": "START_TRAINING", "project": {...}}``.

Everything an event leaves behind (audit row, log line, answer) is bounded: the action must be one
Label Studio sends, at most ``MAX_ANNOTATION_IDS`` annotation ids are kept, and a refused value is
quoted shortened and escaped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import BadRequest

from backend.ids import ProjectId, parse_project_id
from backend.server import protocol

if TYPE_CHECKING:
    from backend.jobs.queue import RetrainQueue
    from backend.server.projects import ServedProjects
    from backend.stores.audit import AuditStore

log = logging.getLogger(__name__)

TRAINING_ACTIONS = frozenset(
    {
        "ANNOTATION_CREATED",
        "ANNOTATIONS_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATIONS_DELETED",
        "START_TRAINING",
    }
)
# WebhookAction in label_studio/webhooks/models.py (1.23; REVIEW_* are Enterprise's): anything else is
# not Label Studio, and is refused before it reaches the log or the audit store.
KNOWN_ACTIONS = TRAINING_ACTIONS | frozenset(
    {
        "PROJECT_CREATED",
        "PROJECT_UPDATED",
        "PROJECT_DELETED",
        "TASKS_CREATED",
        "TASKS_DELETED",
        "LABEL_LINK_CREATED",
        "LABEL_LINK_UPDATED",
        "LABEL_LINK_DELETED",
        "REVIEW_CREATED",
        "REVIEW_UPDATED",
        "REVIEWS_DELETED",
    }
)
KEPT_WARN_S = 10.0  # at most one warning this often about events kept unconfirmed
MAX_ANNOTATION_IDS = 1000  # kept per event (a bulk delete names more: the retrain pulls everything anyway)
MAX_ID = 2**63 - 1  # what the audit store's integer columns and Label Studio's ids hold


@dataclass(frozen=True)
class Event:
    action: str
    project_id: ProjectId | None
    annotation_ids: tuple[int, ...] = ()

    @property
    def triggers_training(self) -> bool:
        return self.action in TRAINING_ACTIONS


def parse_event(body: dict[str, Any]) -> Event:
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("webhook body needs an 'action' string, e.g. ANNOTATION_CREATED")
    if action not in KNOWN_ACTIONS:
        raise BadRequest(f"unknown action {shown(action)}: not one Label Studio sends")
    project = body.get("project")
    project_id = _project_id(project)
    if action in TRAINING_ACTIONS and project_id is None:
        raise BadRequest(f"{action} event has no project id ('project': {{'id': ...}})")
    return Event(
        action=action,
        project_id=project_id,
        annotation_ids=_ids(body.get("annotation"), body.get("annotations")),
    )


def _project_id(project: Any) -> ProjectId | None:
    value = project.get("id") if isinstance(project, dict) else project
    if value is None:
        return None
    try:
        return parse_project_id(value)
    except ValueError:
        raise BadRequest(f"'project.id' must be an integer, got {shown(value)}") from None


def _ids(one: Any, many: Any) -> tuple[int, ...]:
    items = [one] if isinstance(one, dict) else list(one) if isinstance(one, list) else []
    if isinstance(many, list):
        items.extend(many)
    ids = []
    for item in items:
        value = item.get("id") if isinstance(item, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
            ids.append(value)
            if len(ids) == MAX_ANNOTATION_IDS:
                break
    return tuple(ids)


def shown(value: Any, limit: int = 60) -> str:
    """A value as it may appear in an error or a log line: repr-escaped (no newlines, no control
    characters) and shortened, whatever its size."""
    try:
        text = repr(value[: limit + 1] if isinstance(value, str) else value)
    except ValueError:  # an integer too long to print
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


class EventSink(Protocol):
    def accept(self, event: Event) -> dict[str, Any]: ...


class LoggingSink:
    """Records events in the log only; used when no job queue is configured."""

    def accept(self, event: Event) -> dict[str, Any]:
        log.info("webhook %s project=%s annotations=%s", event.action, event.project_id, event.annotation_ids)
        return {"status": "recorded" if event.triggers_training else "ignored", "action": event.action}


class QueueSink:
    """Turns training events of projects Label Studio confirms into coalesced retrains, and records
    them in the audit store. Events naming other project ids are answered 2xx (Label Studio does not
    retry) and dropped: nothing is queued, scheduled or stored for them. A training event Label
    Studio cannot confirm now (unreachable, token refused) is kept (``RetrainQueue.keep_unconfirmed``)
    and logged: the scheduler asks again and requests its retrain once Label Studio confirms."""

    def __init__(
        self, queue: RetrainQueue, audit: AuditStore | None = None, projects: ServedProjects | None = None
    ) -> None:
        self.queue = queue
        self.audit = audit
        self.projects = projects  # a ServedProjects; None = every project id is served (tests, tools)
        self.dropped = 0
        self._warned_at = 0.0
        self._unwarned = 0

    def accept(self, event: Event) -> dict[str, Any]:
        from redis import RedisError
        from werkzeug.exceptions import ServiceUnavailable

        answer: dict[str, Any] = {"action": event.action, "project": event.project_id}
        try:
            verdict = self._served(event)
            if verdict is not None and getattr(verdict, "unconfirmed", False):
                self.queue.keep_unconfirmed(event.project_id)
                self._warn_kept(event, verdict.reason)
                answer.update(status="kept", reason=verdict.reason)
                self._record(event, "kept")
                return answer
            if verdict is not None and not verdict.served:
                self.dropped += 1
                log.debug("webhook %s for project %s dropped: %s", event.action, event.project_id, verdict.reason)
                return {**answer, "status": "dropped", "reason": verdict.reason}
            if not event.triggers_training:
                answer["status"] = "ignored"
            else:
                request = self.queue.request(event.project_id, reason=event.action)
                answer.update(status=request.status, job_id=request.job_id)
        except RedisError as exc:
            self._record(event, "queue unavailable")
            raise ServiceUnavailable(f"the job queue is unavailable ({type(exc).__name__}); retry later") from None
        self._record(event, answer["status"])
        return answer

    def _warn_kept(self, event: Event, reason: str) -> None:
        """One warning per KEPT_WARN_S at most (a flood of events must not flood the log), with a count."""
        now = time.monotonic()
        if now - self._warned_at < KEPT_WARN_S:
            self._unwarned += 1
            return
        more = f" (and {self._unwarned} more kept since the last warning)" if self._unwarned else ""
        log.warning(
            "webhook %s for project %s kept, not queued yet: %s%s", event.action, event.project_id, reason, more
        )
        self._warned_at, self._unwarned = now, 0

    def _served(self, event: Event) -> Any:
        if self.projects is None or event.project_id is None:
            return None
        if not event.triggers_training:  # recorded only for projects already confirmed: no look-up
            return None if self.projects.known(event.project_id) else _NOT_CONFIRMED
        return self.projects.check(event.project_id)

    def _record(self, event: Event, outcome: str) -> None:
        if self.audit is not None:
            try:
                self.audit.record_event(event.action, event.project_id, event.annotation_ids, outcome)
            except Exception:  # the audit trail must not turn an accepted event into an error
                log.exception("could not record webhook event in the audit store")


@dataclass(frozen=True)
class _Unconfirmed:
    served: bool = False
    reason: str = "not a project confirmed by Label Studio"


_NOT_CONFIRMED = _Unconfirmed()


def webhook_routes(sink: EventSink, dropped: Any) -> Blueprint:
    """``POST /webhook`` (Label Studio's annotation events) and ``POST /train`` (its training button);
    ``dropped`` counts events of projects Label Studio does not confirm."""
    routes = Blueprint("webhooks", __name__)

    @routes.post("/webhook")
    def webhook() -> Any:
        answer = sink.accept(parse_event(protocol.json_object(request)))
        if answer.get("status") == "dropped":
            dropped.inc()
        return jsonify(answer)

    @routes.post("/train")
    def train() -> Any:
        project = protocol.project_of(protocol.json_object(request))
        return jsonify(sink.accept(parse_event({"action": "START_TRAINING", "project": {"id": project}})))

    return routes
