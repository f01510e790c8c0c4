"""``GET /dashboard``: the projects at a glance, and each project's report live
(``/dashboard/<id>``, the same page ``hitl report`` writes, refreshing itself). Server-rendered,
no scripts or CDN; behind the same authentication as every route but ``/health``."""

from __future__ import annotations

import html
import time
from typing import Any

from flask import Blueprint, Response, abort

from backend.oversight.report import collect, render
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.registry import Registry

REFRESH_S = 60


def dashboard_routes(settings: Settings, registry: Registry, audit: AuditStore | None) -> Blueprint:
    routes = Blueprint("dashboard", __name__)
    store = audit or AuditStore.from_settings(settings)

    def projects() -> list[int]:
        return sorted({int(p) for p in registry.projects()} | set(store.project_ids()))

    @routes.get("/dashboard")
    def overview() -> Any:
        rows = "".join(_row(project, registry, store) for project in projects())
        body = ("<table><tr><th>project</th><th>serving</th><th>versions</th><th>annotations</th>"
                "<th>pre-annotations changed</th><th>auto_accept</th><th>drift</th></tr>"
                f"{rows}</table>") if rows else "<p>No project has been trained yet.</p>"  # fmt: skip
        now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        head = f'<meta charset="utf-8"><link rel="icon" href="data:,"><meta http-equiv="refresh" content="{REFRESH_S}">'
        page = f"""<!doctype html><html><head>{head}
<title>hitl dashboard</title><style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
.alarm{{color:#b00020;font-weight:bold}}</style></head><body><h1>hitl dashboard</h1>
<p>Updated {now}; refreshes every {REFRESH_S} s.</p>{body}</body></html>"""
        return Response(page, mimetype="text/html")

    @routes.get("/dashboard/<int:project>")
    def project_page(project: int) -> Any:
        if project not in projects():
            abort(404, description=f"no project {project} here: /dashboard lists the projects this backend knows")
        data = collect(project, store, registry, settings.data_dir / "sync-state.sqlite3",
                       settings.routing_target_precision, settings.holdout_fraction)  # fmt: skip
        return Response(render(data, refresh_s=REFRESH_S), mimetype="text/html")

    return routes


def _row(project: int, registry: Registry, audit: AuditStore) -> str:
    corrections = audit.corrections(project)
    shown = [c for c in corrections if c.get("changed") is not None]
    rate = f"{sum(bool(c['changed']) for c in shown) / len(shown):.0%}" if shown else "–"
    serving = registry.current(project) or "cold-start"
    off = [d["model_version"] for d in audit.routing_decisions(project)]
    routing = f'<span class=alarm>off for {html.escape(", ".join(off))}</span>' if off else "on"
    checks = audit.drift_checks(project)
    drift = "not checked" if not checks else ('<span class=alarm>DRIFT</span>' if checks[-1]["alarm"] else "none")
    return (f'<tr><td><a href="/dashboard/{project}">project {project}</a></td><td>{html.escape(serving)}</td>'
            f"<td>{len(registry.versions(project))}</td><td>{len(corrections)}</td><td>{rate}</td>"
            f"<td>{routing}</td><td>{drift}</td></tr>")  # fmt: skip
