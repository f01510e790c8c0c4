"""``hitl report``: one self-contained HTML page per project, with the plots a lead wants to see.

- quality per model version: the share of its pre-annotations annotators changed (from the audit
  trail) next to its held-out score at publish time (from the registry);
- the calibration diagram of the serving version (held-out reliability after temperature scaling);
- the score distribution of the unlabeled queue at the last sync, per version;
- the retrain history: every candidate, published or rejected by the gate, with its score.

Everything is read from the stores the backend already writes (audit store, registry, sync state);
nothing calls Label Studio. Plots are PNGs embedded in the page, so the file can be mailed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

from backend.audit import AuditStore
from backend.registry import Registry, RegistryError
from backend.sync import SyncState


@dataclass
class ProjectData:
    project_id: int
    versions: list[dict[str, Any]]  # registry metadata of published versions, oldest first
    candidates: list[dict[str, Any]]  # audit records of every candidate, published or not
    corrections: list[dict[str, Any]]
    queue_scores: dict[str, list[float]]
    current: str | None


def collect(project_id: int, audit: AuditStore, registry: Registry, sync_state: Path) -> ProjectData:
    key = str(project_id)
    versions = []
    for version in registry.versions(key):
        try:
            versions.append({"version": version, **registry.meta(key, version)})
        except (RegistryError, OSError, ValueError):
            continue
    versions.sort(key=lambda m: m.get("created_at") or m["version"])
    scores = SyncState(sync_state).strategy_scores(project_id) if sync_state.exists() else {}
    return ProjectData(project_id, versions, audit.versions(project_id), audit.corrections(project_id), scores,
                       registry.current(key))  # fmt: skip


def _axes(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _primary(metrics: Any) -> float | None:
    if isinstance(metrics, str):
        metrics = json.loads(metrics or "{}")
    value = (metrics or {}).get("primary")
    return float(value) if value is not None else None


def quality_plot(data: ProjectData) -> str | None:
    rates: dict[str, list[bool]] = {}
    for c in data.corrections:
        if c.get("changed") is not None and c.get("prediction_model_version"):
            rates.setdefault(c["prediction_model_version"], []).append(bool(c["changed"]))
    names = [v["version"] for v in data.versions]
    names += sorted(set(rates) - set(names))
    if not names:
        return None
    x = range(len(names))
    fig, ax = _axes(max(6, len(names) * 0.9), 3.6)
    changed = [sum(rates[n]) / len(rates[n]) if rates.get(n) else float("nan") for n in names]
    ax.bar(x, changed, color="#e4572e", alpha=0.8, label="correction rate (pre-annotations changed)")
    for i, n in enumerate(names):
        if rates.get(n):
            ax.annotate(f"n={len(rates[n])}", (i, changed[i]), ha="center", va="bottom", fontsize=7)
    held = {v["version"]: _primary(v.get("metrics")) for v in data.versions}
    ax.plot(x, [held.get(n) if held.get(n) is not None else float("nan") for n in names], "o-", color="#17bebb",
            label="held-out score at publish (accuracy / F1)")  # fmt: skip
    ax.set_xticks(list(x), [n.split("-")[0] for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("model version")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Quality per model version")
    return _png(fig)


def calibration_plot(data: ProjectData) -> str | None:
    meta = next((v for v in reversed(data.versions) if v["version"] == data.current), None)
    points = ((meta or {}).get("calibration") or {}).get("reliability_after")
    if not points:
        return None
    fig, ax = _axes(4.2, 4.2)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    conf, acc, _ = zip(*points, strict=True)
    ax.plot(conf, acc, "o-", color="#2e86ab", label="held-out, after temperature scaling")
    for c, a, k in points:
        ax.annotate(str(k), (c, a), fontsize=7, xytext=(3, -9), textcoords="offset points")
    calibration = meta["calibration"]  # type: ignore[index]
    ax.set_title(f"Calibration of {data.current.split('-')[0] if data.current else ''} "
                 f"(ECE {calibration.get('heldout_ece_after', float('nan')):.3f}, T={calibration.get('temperature')})",
                 fontsize=9)  # fmt: skip
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def queue_plot(data: ProjectData) -> str | None:
    if not data.queue_scores:
        return None
    fig, ax = _axes(6, 3.4)
    for version, scores in sorted(data.queue_scores.items()):
        ax.hist(scores, bins=30, alpha=0.6, label=f"{version.split('-')[0]} ({len(scores)} tasks)")
    ax.set_xlabel("strategy score at the last sync (lower = more informative = served sooner)")
    ax.set_ylabel("unlabeled tasks")
    ax.legend(fontsize=8)
    ax.set_title("Score distribution of the queue")
    return _png(fig)


def history_plot(data: ProjectData) -> str | None:
    if not data.candidates:
        return None
    fig, ax = _axes(7, 3.4)
    for published, color, label in ((True, "#2e86ab", "published"), (False, "#e4572e", "rejected by the gate")):
        rows = [c for c in data.candidates if bool(c["published"]) is published]
        if rows:
            ax.scatter([c["examples"] for c in rows], [_primary(c["metrics"]) for c in rows], color=color,
                       label=label, marker="o" if published else "x")  # fmt: skip
    ordered = sorted((c for c in data.candidates if c["published"]), key=lambda c: c["recorded_at"])
    ax.plot([c["examples"] for c in ordered], [_primary(c["metrics"]) for c in ordered], color="#2e86ab", alpha=0.4)
    ax.set_xlabel("annotations trained on")
    ax.set_ylabel("held-out score")
    ax.legend(fontsize=8)
    ax.set_title("Retrain history")
    return _png(fig)


def _table(data: ProjectData) -> str:
    rows = []
    for c in sorted(data.candidates, key=lambda c: c["recorded_at"]):
        gate = json.loads(c["gate"]) if isinstance(c["gate"], str) else (c["gate"] or {})
        score = _primary(c["metrics"])
        rows.append(
            f"<tr><td>{html.escape(c['version'])}</td><td>{c['kind']}</td><td>{'yes' if c['published'] else 'no'}</td>"
            f"<td>{c['examples']}</td><td>{'' if score is None else f'{score:.3f}'}</td>"
            f"<td>{html.escape(str(gate.get('reason', '')))}</td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M', time.gmtime(c['recorded_at']))}</td></tr>"
        )
    head = "<tr><th>version</th><th>kind</th><th>published</th><th>annotations</th><th>held-out</th>" \
           "<th>gate</th><th>UTC</th></tr>"  # fmt: skip
    return f"<table>{head}{''.join(rows)}</table>" if rows else "<p>No retrain recorded yet.</p>"


def render(data: ProjectData) -> str:
    changed = [c for c in data.corrections if c.get("changed") is not None]
    rate = sum(bool(c["changed"]) for c in changed) / len(changed) if changed else None
    sections = [
        ("Quality per model version", quality_plot(data),
         "Bars: share of pre-annotations annotators changed. Line: the version's score on held-out annotations."),
        ("Calibration", calibration_plot(data),
         "Points on the diagonal mean a confidence of 0.8 is right 80 % of the time (numbers: tasks per bin)."),
        ("Queue", queue_plot(data), "What the model thinks of the tasks still waiting for a human."),
        ("Retrain history", history_plot(data), "Every candidate the worker trained, and the gate's decision."),
    ]  # fmt: skip
    parts = []
    for title, png, caption in sections:
        body = f'<img alt="{title}" src="data:image/png;base64,{png}">' if png else "<p><i>No data yet.</i></p>"
        parts.append(f"<h2>{title}</h2><p class=cap>{caption}</p>{body}")
    summary = (f"{len(data.versions)} published versions, serving <b>{html.escape(data.current or 'cold-start')}</b>; "
               f"{len(data.corrections)} annotations audited"
               + (f", {rate:.0%} of pre-annotations changed" if rate is not None else ""))  # fmt: skip
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>hitl report: project {data.project_id}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
.cap{{color:#555;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>Project {data.project_id}</h1><p>{summary}. Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.</p>
{''.join(parts)}<h2>Candidates</h2>{_table(data)}</body></html>"""


def write_report(project_id: int, audit: AuditStore, registry: Registry, data_dir: Path, out: Path) -> Path:
    data = collect(project_id, audit, registry, data_dir / "sync-state.sqlite3")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out
