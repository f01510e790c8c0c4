"""Flask application factory speaking Label Studio 1.23's ML backend protocol.

Label Studio calls ``GET /health`` (1 s timeout), ``POST /setup`` (3 s), ``POST /predict``
(100 s) and ``POST /webhook`` / ``POST /train``. /health and /setup answer from memory; the
encoder loads in the background.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from redis import RedisError
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable, Unauthorized

from backend import __version__, logs
from backend.ids import ProjectId
from backend.jobs.inputs import PredictInputs
from backend.labeling import TaskError, TaskSpec, task_text
from backend.server import protocol
from backend.server.auth import host_allowed, is_authorized
from backend.server.collaborators import Collaborators
from backend.server.dashboard import dashboard_routes
from backend.server.events import EventSink, webhook_routes
from backend.server.metrics import ServerMetrics
from backend.server.openapi import openapi
from backend.server.readiness import label_studio_check as label_studio_check_for
from backend.serving.predictor import NotReady, Predictor
from backend.settings import Settings, get_settings
from backend.stores.versions import COLD_START

log = logging.getLogger(__name__)

# Every answer: no scripts, no outside resources, never framed, never content-sniffed. The dashboard
# needs only its inline style and its plots as data: images.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
ENCODER_FAILED = "the encoder could not be loaded: /ready (behind authentication) and the server log say why"


def create_app(
    settings: Settings | None = None,
    predictor: Predictor | None = None,
    events: EventSink | None = None,
    load_in_background: bool = True,
) -> Flask:
    """The app: request hooks (auth, Host check, request ids, metrics, security headers), the ML
    protocol, the status routes, webhooks and the dashboard, wired to their collaborators."""
    settings = settings or get_settings()
    if predictor is None:
        predictor = Predictor(settings)
        predictor.start(background=load_in_background)
    parts = Collaborators.of(events) if events is not None else Collaborators.from_settings(settings)
    metrics = ServerMetrics(parts.audit, parts.queue, settings.max_metric_series)
    # what /predict is asked is kept for the drift check (jobs/inputs.py)
    keeps = parts.queue is not None and settings.redis_url and settings.drift_window > 0
    inputs = PredictInputs.for_server(settings.redis_url) if keeps and settings.redis_url else None
    app = Flask("hitl-backend", static_folder=None)  # no implicit /static route: nothing here is a file
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["hitl"] = {"settings": settings, "predictor": predictor, "collaborators": parts}
    _install_hooks(app, settings, metrics)
    app.register_blueprint(protocol_routes(settings, predictor, metrics, inputs))
    app.register_blueprint(status_routes(settings, predictor, parts, metrics))
    app.register_blueprint(webhook_routes(parts.events, metrics.webhooks_dropped))
    app.register_blueprint(dashboard_routes(settings, predictor.registry, parts.audit, parts.queue))
    return app


def _install_hooks(app: Flask, settings: Settings, metrics: ServerMetrics) -> None:
    """What every request goes through: the Host check and auth first, then request ids, latency
    metrics, one log line and the security headers; errors answer JSON, never a stack trace."""

    @app.before_request
    def _auth() -> None:
        g.started = time.perf_counter()
        g.request_id_token = logs.request_id.set(logs.new_request_id(request.headers.get("X-Request-Id")))
        if not host_allowed(request.host, settings):
            raise BadRequest(
                "this server does not answer to that Host name: add it to HITL_ALLOWED_HOSTS if it is "
                "the name Label Studio or a proxy uses to reach the backend"
            )
        if not is_authorized(request, settings):
            raise Unauthorized("valid credentials are required: HTTP basic auth, or the webhook secret header")

    @app.after_request
    def _observe(response: Any) -> Any:
        endpoint = request.url_rule.rule if request.url_rule else "unknown"
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.latency.labels(endpoint, str(response.status_code)).observe(seconds)
        response.headers["X-Request-Id"] = logs.request_id.get()
        response.headers.update(SECURITY_HEADERS)
        if endpoint != "/health":  # Label Studio probes /health every few seconds
            fields = {
                "method": request.method,
                "path": endpoint,
                "status": response.status_code,
                "ms": round(seconds * 1000, 1),
                "tasks": g.get("tasks"),
            }
            log.info("%s %s %s %.1fms tasks=%s", *fields.values(), extra=fields)
        return response

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id.reset(token)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        response = jsonify({"error": exc.description, "status": exc.code})
        response.status_code = exc.code or 500
        if exc.code == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="hitl-backend"'
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s", request.path)
        response = jsonify({"error": f"internal error: {type(exc).__name__}", "status": 500})
        response.status_code = 500
        return response


def protocol_routes(
    settings: Settings, predictor: Predictor, metrics: ServerMetrics, inputs: PredictInputs | None
) -> Blueprint:
    """Label Studio's ML backend protocol: /setup, /validate, /predict, and /versions."""
    routes = Blueprint("protocol", __name__)

    @routes.post("/setup")
    def setup() -> Any:
        body = protocol.json_object(request)
        project = protocol.project_of(body)
        spec = protocol.spec_of(body.get("schema"), "schema")
        return jsonify({"model_version": predictor.model_version(project, spec)})

    @routes.post("/validate")
    def validate() -> Any:
        body = protocol.json_object(request)
        spec = protocol.spec_of(body.get("config"), "config")
        return jsonify({"status": "ok", "kind": spec.kind.value, "labels": list(spec.labels)})

    @routes.post("/predict")
    def predict() -> Any:
        body = protocol.json_object(request)
        project = protocol.project_of(body)
        spec = protocol.spec_of(body.get("label_config"), "label_config")
        tasks = protocol.tasks_of(body, settings.max_tasks_per_request)
        g.tasks = len(tasks)
        try:
            results = predictor.predict(project, spec, tasks)
        except NotReady as exc:
            raise ServiceUnavailable(str(exc)) from None
        metrics.observe_predictions(project, results)
        trained = bool(results) and results[0].get("model_version") not in (None, COLD_START)
        if inputs is not None and trained and spec.modality == "text" and not spec.is_ner:
            _keep_inputs(inputs, project, spec, tasks, settings.max_text_chars)
        return jsonify({"results": results, "model_version": results[0]["model_version"] if results else None})

    @routes.get("/versions")
    def versions() -> Any:
        project = request.args.get("project")
        if not project:
            return jsonify({"versions": []})
        return jsonify({"versions": predictor.registry.versions(protocol.project_of({"project": project}))})

    return routes


def status_routes(settings: Settings, predictor: Predictor, parts: Collaborators, metrics: ServerMetrics) -> Blueprint:
    """/health (Label Studio's probe, open), /ready (what else works), /metrics, /openapi.json."""
    routes = Blueprint("status", __name__)
    queue = parts.queue
    label_studio_check = label_studio_check_for(settings, queue)

    @routes.get("/openapi.json")
    def openapi_description() -> Any:
        return jsonify(openapi())

    @routes.get("/metrics")
    def prometheus() -> Any:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @routes.get("/health")
    def health() -> Any:
        return jsonify(
            {
                "status": "UP",
                "model_class": "HitlTextClassifier",
                "version": __version__,
                "encoder_ready": predictor.ready,
                # /health is open to anyone: no paths, no error text (they are in /ready)
                "encoder_error": ENCODER_FAILED if predictor.load_error else None,
                # what still serves but less than it should (the audit database away: writes wait on disk)
                "degraded": [d for d in [parts.audit.degraded() if parts.audit else None] if d],
            }
        )

    @routes.get("/ready")
    def ready() -> Any:
        """Whether corrections can turn into versions now: encoder loaded, Redis answering, a worker
        alive. /health stays "UP" for Label Studio while predictions work; this says the rest."""
        checks: dict[str, Any] = {"encoder": "ok" if predictor.ready else (predictor.load_error or "loading")}
        if queue is None:
            checks["queue"] = "not configured (HITL_REDIS_URL): webhooks are logged, nothing retrains"
        else:
            try:
                queue.connection.ping()
                checks["queue"] = "ok"
                workers = queue.live_workers()
                checks["workers"] = workers if workers else "none alive: start `hitl worker` (or use `hitl run`)"
            except RedisError as exc:
                checks["queue"] = f"Redis unavailable ({type(exc).__name__})"
        checks["label_studio"] = label_studio_check()
        shared = predictor.registry.shared_state()  # hosts that share PostgreSQL: can this one reach it?
        if shared is not None:
            checks["database"] = shared
        ok = all(v == "ok" or isinstance(v, int) for v in checks.values())
        response = jsonify({"status": "ready" if ok else "not ready", **checks})
        response.status_code = 200 if ok else 503
        return response

    return routes


def _keep_inputs(inputs: PredictInputs, project: ProjectId, spec: TaskSpec, tasks: list[Any], max_chars: int) -> None:
    """Record the readable texts for the drift check; Redis being away never fails a prediction."""
    texts = []
    for task in tasks:
        with contextlib.suppress(TaskError):
            texts.append(task_text(task, spec, max_chars))
    try:
        inputs.record(project, texts)
    except RedisError as exc:
        log.warning("project %s: /predict inputs not kept for the drift check (%s)", project, type(exc).__name__)
