"""``GET /dashboard``: the projects at a glance, and each project's report live
(``/dashboard/<id>``, the same page ``hitl report`` writes, refreshing itself). Server-rendered,
no scripts or CDN; behind the same authentication as every route but ``/health``."""

from __future__ import annotations

import html
import logging
import time
from typing import Any

from flask import Blueprint, Response, abort

from backend.jobs.queue import RetrainQueue
from backend.oversight.collect import ProjectData, collect
from backend.oversight.report import render
from backend.oversight.retrains import retrain_lines
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.queue_state import queue_state_location
from backend.stores.registry import Registry

log = logging.getLogger(__name__)

REFRESH_S = 60


def dashboard_routes(
    settings: Settings, registry: Registry, audit: AuditStore | None, queue: RetrainQueue | None = None
) -> Blueprint:
    """``queue``: where the retrain jobs wait (their state is shown when there is one)."""
    routes = Blueprint("dashboard", __name__)
    store = audit or AuditStore.from_settings(settings)

    def projects() -> list[int]:
        return sorted({int(p) for p in registry.projects()} | set(store.project_ids()))

    @routes.get("/dashboard")
    def overview() -> Any:
        known = projects()
        jobs = {p: html.escape(line) for p, line in retrain_lines(queue, known).items()}
        rows = "".join(_row_or_error(project, registry, store, settings, jobs[project]) for project in known)
        body = (
            (
                "<table><tr><th>project</th><th>serving</th><th>versions</th><th>annotations</th>"
                "<th>pre-annotations changed</th><th>auto_accept (pool coverage)</th><th>drift</th>"
                "<th>worst slice (held-out)</th><th>when to stop</th><th>label checks</th><th>retrains</th></tr>"
                f"{rows}</table>"
            )
            if rows
            else "<p>No project has been trained yet.</p>"
        )
        now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        head = f'<meta charset="utf-8"><link rel="icon" href="data:,"><meta http-equiv="refresh" content="{REFRESH_S}">'
        page = f"""<!doctype html><html><head>{head}
<title>hitl dashboard</title><style>body{{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
.alarm{{color:#b00020;font-weight:bold}}</style></head><body><h1>hitl dashboard</h1>
<p>Updated {now}; refreshes every {REFRESH_S} s.</p>{body}</body></html>"""
        return Response(page, mimetype="text/html")

    @routes.get("/dashboard/<int:project>")
    def project_page(project: int) -> Any:
        if project not in projects():
            abort(404, description=f"no project {project} here: /dashboard lists the projects this backend knows")
        data = _collect(project, registry, store, settings)
        retrains = retrain_lines(queue, [project])[project]
        return Response(render(data, refresh_s=REFRESH_S, retrains=retrains), mimetype="text/html")

    return routes


def _row_or_error(project: int, registry: Registry, audit: AuditStore, settings: Settings, jobs: str) -> str:
    """One project's row; a project whose stores cannot be read says so without hiding the others."""
    try:
        return _row(project, registry, audit, settings, jobs)
    except Exception as exc:
        log.warning("dashboard: project %s could not be read (%s: %s)", project, type(exc).__name__, exc)
        return (
            f'<tr><td><a href="/dashboard/{project}">project {project}</a></td>'
            f"<td colspan=10 class=alarm>could not be read ({html.escape(type(exc).__name__)}); "
            "see the log</td></tr>"
        )


def _collect(project: int, registry: Registry, audit: AuditStore, settings: Settings) -> ProjectData:
    """One project's oversight data, as the report collects it (``oversight/collect.py``)."""
    return collect(
        project,
        audit,
        registry,
        queue_state_location(settings.data_dir, settings.database_url),
        settings.routing_target_precision,
        settings.holdout_fraction,
        settings.gate_min_eval,
    )


def _row(project: int, registry: Registry, audit: AuditStore, settings: Settings, jobs: str) -> str:
    data = _collect(project, registry, audit, settings)
    shown, changed = data.correction_rate()
    rate = f"{changed / shown:.0%}" if shown else "–"
    off = [d["model_version"] for d in audit.routing_decisions(project)]
    routing = f"<span class=alarm>off for {html.escape(', '.join(off))}</span>" if off else "on"
    current = next((r for r in data.routing if r.model_version == data.current_served), None)
    coverage = None if current is None else data.pool_coverage(data.current_served, current.threshold)
    if current is None and not off:
        routing = "no threshold yet: every task is reviewed"
    elif current is not None and coverage is not None and not current.suspended:
        routing += f" ({coverage[0]:.0%} of the pool)"
    alarms = data.standing_drift()
    drift = (
        "not checked"
        if not data.drift_checks
        else "none"
        if not alarms
        else f"<span class=alarm>DRIFT ({', '.join(alarms)})</span>"
    )
    worst = next(
        (
            f"{html.escape(name)}: {scores['accuracy']:.2f} of {int(scores['n'])}"
            for name, scores, _ in data.serving_slices()
        ),
        "–",
    )
    return (
        f'<tr><td><a href="/dashboard/{project}">project {project}</a></td>'
        f"<td>{html.escape(data.current or 'cold-start')}{_model(data)}</td><td>{len(data.versions)}</td>"
        f"<td>{len(data.corrections)}</td><td>{rate}</td><td>{routing}</td><td>{drift}</td><td>{worst}</td>"
        f"<td>{_stopping(data)}</td><td>{_checks(data)}</td><td>{jobs}</td></tr>"
    )


def _model(data: ProjectData) -> str:
    """A plug-in's name under its version (the bundled model goes without saying)."""
    return f"<br><small>{html.escape(data.model)}</small>" if data.model.startswith("plug-in") else ""


def _stopping(data: ProjectData) -> str:
    """The stopping criteria's verdict in two words; the project page has the sentence."""
    if data.stopping is None:
        return "no sync yet"
    if data.stopping.stop:
        return "<b>stop: more labels have stopped paying</b>"
    return "predictions stable" if data.stopping.stable else "still learning"


def _checks(data: ProjectData) -> str:
    """Suspected label errors in the latest check, and batch-correction proposals made."""
    checks = data.label_checks
    suspects = f"{len(checks[-1]['suspects'])} suspected label errors" if checks else "no label check yet"
    proposed = sum(bool(p["task_ids"]) for p in data.proposals)
    return f"{suspects}; {proposed} batch-correction proposal{'' if proposed == 1 else 's'}"
