"""``hitl report``: one self-contained HTML page per project, with the plots a lead wants to see.

- quality per model version: the share of its pre-annotations annotators changed (from the audit
  trail) next to its held-out score at publish time (from the registry);
- the calibration diagram of the serving version (held-out reliability after temperature scaling);
- the score distribution of the unlabeled queue at the last sync, per version;
- the retrain history: every candidate, published or rejected by the gate, with its score;
- oversight tables: accuracy estimated and audited, auto-accept in production, drift, probable label
  errors with reviewers' verdicts, annotators' agreement and quality, batch corrections.

It renders what ``oversight/collect.py`` collected (the dashboard renders the same data);
nothing calls Label Studio. Plots are PNGs embedded in the page, so the file can be mailed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
from matplotlib.ticker import MaxNLocator

from backend.monitoring.routing_audit import wilson
from backend.oversight.collect import ProjectData, collect
from backend.oversight.retrains import NO_QUEUE
from backend.serving.routing import is_heldout
from backend.stores import versions as version_names
from backend.stores.audit import AuditStore
from backend.stores.registry import Registry, served_name

WIDTH = 9.0  # inches: every plot is as wide as the page, whatever the number of versions
MAX_TABLE_ROWS = 50
FEW_HELDOUT = 20  # held-out scores on fewer annotations are drawn as unreliable


def _axes(height: float = 3.6, width: float = WIDTH) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _legend_below(ax: Any, columns: int = 3) -> None:
    """Legends sit under the plot, never on the data (a few entries, however many versions)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=columns, fontsize=8, frameon=False)


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def _metrics(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return value or {}


def _primary(metrics: Any) -> float | None:
    value = _metrics(metrics).get("primary")
    return float(value) if value is not None else None


def quality_figure(data: ProjectData) -> Figure | None:
    """Correction rate per version (dot area = annotations it pre-annotated) and the held-out score
    at publish, against the version number: readable at 5 versions and at 1,000."""
    rates: dict[str, list[bool]] = {}
    for c in data.corrections:
        if c.get("changed") is not None and c.get("prediction_model_version"):
            rates.setdefault(c["prediction_model_version"], []).append(bool(c["changed"]))
    held = [
        (n, _primary(v.get("metrics"))) for v in data.versions if (n := version_names.number(v["version"])) is not None
    ]
    shown = [(n, sum(r) / len(r), len(r)) for name, r in rates.items() if (n := version_names.number(name)) is not None]
    if not held and not shown:
        return None
    fig, ax = _axes()
    if shown:
        x, rate, count = zip(*sorted(shown), strict=True)
        biggest = max(count)
        ax.scatter(
            x,
            rate,
            s=[12 + 120 * c / biggest for c in count],
            color="#e4572e",
            alpha=0.6,
            label=f"correction rate (dot area: annotations, up to {biggest})",
        )
    if len(shown) > 60:  # many versions: the trend is what a lead reads, the dots are the detail
        x, rate, count = zip(*sorted(shown), strict=True)
        width = max(len(x) // 40, 2)
        weights = np.convolve(count, np.ones(width), "valid")
        smooth = np.convolve(np.multiply(rate, count), np.ones(width), "valid") / weights
        ax.plot(x[width - 1 :], smooth, color="#a4161a", label=f"correction rate over {width} versions")
    points = [(n, score) for n, score in held if score is not None]
    if points:
        x, score = zip(*points, strict=True)
        ax.plot(
            x,
            score,
            "-",
            color="#17bebb",
            marker="o" if len(points) <= 60 else None,
            markersize=3,
            label="held-out score at publish (accuracy / F1)",
        )
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("model version number")
    ax.set_title("Quality per model version")
    _legend_below(ax, 3)
    return fig


def calibration_figure(data: ProjectData) -> Figure | None:
    meta = next((v for v in reversed(data.versions) if v["version"] == data.current), None)
    calibration = (meta or {}).get("calibration") or {}
    points = [p for p in calibration.get("reliability_after") or [] if p[2] > 0]
    if not points:
        return None
    fig, ax = _axes(4.2, 5.0)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    conf, acc, count = zip(*points, strict=True)
    total = sum(count)
    ax.scatter(
        conf,
        acc,
        s=[15 + 200 * k / max(count) for k in count],
        color="#2e86ab",
        zorder=3,
        label="held-out bins (area: tasks)",
    )
    ax.plot(conf, acc, "-", color="#2e86ab", alpha=0.5)
    ece = calibration.get("heldout_ece_after", float("nan"))
    verdict = "" if total >= 50 else " (too few to judge)"  # short: the title must fit the plot's width
    ax.set_title(
        f"Calibration of {data.current.split('-')[0] if data.current else ''}: ECE {ece:.3f} on {total} tasks{verdict}",
        fontsize=9,
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    _legend_below(ax, 2)
    return fig


def queue_figure(data: ProjectData) -> Figure | None:
    """The unlabeled pool as the serving version ranked it at the last sync (one histogram)."""
    scores = data.queue_scores.get(data.current_served) or []
    if not scores:
        return None
    fig, ax = _axes(3.2)
    ax.hist(scores, bins=40, color="#2e86ab", alpha=0.8)
    ax.set_xlabel("strategy score at the last sync (lower = more informative = served sooner)")
    ax.set_ylabel("unlabeled tasks")
    ax.set_title(f"Queue of {data.current_served.split('-')[0]}: {len(scores):,} unlabeled tasks")
    return fig


def history_figure(data: ProjectData, few: int = FEW_HELDOUT) -> Figure | None:
    if not data.candidates:
        return None
    fig, ax = _axes()
    groups = [
        ("published", lambda c: bool(c["published"]), dict(color="#2e86ab", marker="o")),
        (
            "rejected by the gate",
            lambda c: not c["published"] and not version_names.is_superseded(c["version"]),
            dict(color="#e4572e", marker="x"),
        ),
        (
            f"scored on < {few} held-out annotations (noise)",
            None,
            dict(facecolors="none", edgecolors="#999", marker="o"),
        ),
    ]
    reliable = [c for c in data.candidates if (_metrics(c["metrics"]).get("n") or 0) >= few]
    noisy = [c for c in data.candidates if (_metrics(c["metrics"]).get("n") or 0) < few]
    for label, keep, style in groups:
        rows = noisy if keep is None else [c for c in reliable if keep(c)]
        rows = [c for c in rows if _primary(c["metrics"]) is not None]
        if rows:
            ax.scatter(
                [c["examples"] for c in rows], [_primary(c["metrics"]) for c in rows], s=14, label=label, **style
            )
    ordered = sorted((c for c in reliable if c["published"]), key=lambda c: c["recorded_at"])
    ax.plot([c["examples"] for c in ordered], [_primary(c["metrics"]) for c in ordered], color="#2e86ab", alpha=0.4)
    ax.set_xlabel("annotations trained on")
    ax.set_ylabel("held-out score")
    ax.set_title("Retrain history")
    _legend_below(ax, 3)
    return fig


FIGURES = {
    "quality": quality_figure,
    "calibration": calibration_figure,
    "queue": queue_figure,
    "history": history_figure,
}


def _table(data: ProjectData) -> str:
    candidates = sorted(data.candidates, key=lambda c: c["recorded_at"])
    published = sum(bool(c["published"]) for c in candidates)
    rows = []
    for c in candidates[-MAX_TABLE_ROWS:][::-1]:  # newest first
        gate = json.loads(c["gate"]) if isinstance(c["gate"], str) else (c["gate"] or {})
        score = _primary(c["metrics"])
        n = _metrics(c["metrics"]).get("n")
        rows.append(
            f"<tr><td>{html.escape(c['version'])}</td><td>{c['kind']}</td><td>{'yes' if c['published'] else 'no'}</td>"
            f"<td>{c['examples']}</td><td>{'' if score is None else f'{score:.3f}'}</td><td>{n or ''}</td>"
            f"<td>{html.escape(str(gate.get('reason', '')))}</td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M', time.gmtime(c['recorded_at']))}</td></tr>"
        )
    head = (
        "<tr><th>version</th><th>kind</th><th>published</th><th>annotations</th><th>held-out</th>"
        "<th>n held-out</th><th>gate</th><th>UTC</th></tr>"
    )
    if not rows:
        return "<p>No retrain recorded yet.</p>"
    shown = f"the newest {len(rows)} of " if len(candidates) > len(rows) else ""
    return (
        f"<p class=cap>{shown}{len(candidates)} candidates: {published} published, "
        f"{len(candidates) - published} not.</p><table>{head}{''.join(rows)}</table>"
    )


def render(data: ProjectData, refresh_s: int | None = None, retrains: str | None = None) -> str:
    """The page; with ``refresh_s`` (the live dashboard) it reloads itself and links back to the list.
    ``retrains``: the project's retrain jobs waiting and last durations (``oversight/retrains.py``)."""
    shown, changed = data.correction_rate()
    rate = changed / shown if shown else None
    sections = [
        (
            "Quality per model version",
            "quality",
            "Dots: share of a version's pre-annotations annotators changed. Line: its score on held-out annotations.",
        ),
        ("Calibration", "calibration", "Points on the diagonal mean a confidence of 0.8 is right 80 % of the time."),
        ("Queue", "queue", "What the serving model thinks of the tasks still waiting for a human."),
        ("Retrain history", "history", "Every candidate the worker trained, and the gate's decision."),
    ]
    parts = []
    for title, key, caption in sections:
        fig = FIGURES[key](data)
        body = f'<img alt="{title}" src="data:image/png;base64,{_png(fig)}">' if fig else "<p><i>No data yet.</i></p>"
        parts.append(f"<h2>{title}</h2><p class=cap>{caption}</p>{body}")
    summary = (
        f"{len(data.versions)} published versions, serving <b>{html.escape(data.current or 'cold-start')}</b>"
        + (f" ({html.escape(data.model)})" if data.model else "")
        + "; "
        f"{len(data.corrections)} annotations audited"
        + (f", {rate:.0%} of pre-annotations changed" if rate is not None else "")
    )
    live = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    nav = f'<p><a href="/dashboard">All projects</a> · refreshes every {refresh_s} s</p>' if refresh_s else ""
    title = f"hitl report: project {data.project_id}"
    # the same policy as the server's header (server/app.py), for the file `hitl report` writes
    csp = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">"
    )
    head = f'<meta charset="utf-8">{csp}<link rel="icon" href="data:,">{live}<title>{title}</title>'
    return f"""<!doctype html><html><head>{head}
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
.cap{{color:#555;font-size:13px}}img{{max-width:100%}}</style></head><body>
{nav}<h1>Project {data.project_id}</h1><p>{summary}. Generated {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.</p>
{_monitors(data)}<h2>When to stop</h2><p>{html.escape(data.stopping.message if data.stopping else "No sync yet.")}</p>
<h2>Retrain queue</h2><p>{html.escape(retrains or NO_QUEUE)}</p>
{"".join(parts)}{_accuracy(data)}{_slices(data)}{_routing(data)}{_drift(data)}{_label_errors(data)}{_annotators(data)}{_proposals(data)}<h2>Candidates</h2>{_table(data)}</body></html>"""


def _monitors(data: ProjectData) -> str:
    """The monitors' findings (``ProjectData.findings``), alarms first: what to look at now."""
    found = sorted(data.findings(), key=lambda f: not f.alarm)
    if not found:
        return ""
    items = "".join(
        f"<li{' class=alarm' if f.alarm else ''}>{'<b>' if f.alarm else ''}{html.escape(f.said())}"
        f"{'</b>' if f.alarm else ''}</li>"
        for f in found
    )
    return f"<h2>Monitors</h2><ul class=monitors>{items}</ul>"


def _accuracy(data: ProjectData) -> str:
    """Accuracy estimated without labels (the mean calibrated confidence over the pool) next to the
    accuracy humans measured on held-out tasks, a random sample (pre-annotations kept)."""
    audited: dict[str, list[int]] = {}
    for c in data.corrections:
        if c.get("changed") is not None and is_heldout(c["task_id"], data.holdout_fraction):
            counts = audited.setdefault(str(c["prediction_model_version"]), [0, 0])
            counts[0] += 1
            counts[1] += 0 if c["changed"] else 1
    names = sorted(set(data.estimated) | set(audited), key=lambda v: (version_names.number(v) or 0, v))[
        -MAX_TABLE_ROWS:
    ][::-1]
    if not names:
        return ""
    rows = []
    for name in names:
        mean, pool = data.estimated.get(name, (None, 0))
        n, kept = audited.get(name, (0, 0))
        low, high = wilson(kept, n)
        rows.append(
            [
                html.escape(name),
                "" if mean is None else f"{mean:.1%} over {pool} tasks",
                f"{kept / n:.1%} of {n} ({low:.0%}–{high:.0%})" if n else "no held-out review yet",
            ]
        )
    caption = (
        "Estimated: the mean calibrated confidence of the pre-annotations on the unlabeled pool at the last "
        "sync (no labels needed). Audited: the share of pre-annotations annotators kept on held-out tasks, "
        "a random sample of the pool, with its 95 % interval."
    )
    return _section("Accuracy: estimated and audited", caption, ["version", "estimated", "audited"], rows)


def _routing(data: ProjectData) -> str:
    """auto_accept in production: humans' verdicts on the predictions it would let through."""
    if not data.routing:
        return ""
    rows = [
        [
            html.escape(r.model_version),
            f"{r.threshold:.3f}",
            _pool_coverage(data, r.model_version, r.threshold),
            r.reviewed,
            r.confirmed,
            "" if r.precision is None else f"{r.precision:.1%}",
            f"{r.low:.1%} – {r.high:.1%}",
            html.escape("off: " + r.suspended if r.suspended else "on"),
        ]
        for r in data.routing[-MAX_TABLE_ROWS:][::-1]
    ]
    caption = (
        "Coverage: the share of the unlabeled pool whose pre-annotation is at or above the version's routing "
        "threshold at the last sync (what auto_accept lets past review). Reviewed: such predictions humans "
        "saw anyway (audit samples and held-out tasks), and how many they kept. auto_accept is switched off "
        f"when the 95 % interval ends below the target ({data.routing[0].target:.0%})."
    )
    headers = ["version", "threshold", "coverage", "reviewed", "kept", "precision", "95 % interval", "auto_accept"]
    return _section("Auto-accept in production", caption, headers, rows)


def _pool_coverage(data: ProjectData, version: str, threshold: float) -> str:
    coverage = data.pool_coverage(version, threshold)
    return "not on the pool" if coverage is None else f"{coverage[0]:.1%} of {coverage[1]}"


def _slices(data: ProjectData) -> str:
    """Per class and per named field value: the serving version's held-out recall (accuracy on the
    slice) and precision, the change from the version before, and annotators' correction rate."""
    rows_in = data.serving_slices()
    if not rows_in:
        return ""
    corrected = data.slice_corrections(data.current_served)
    rows = []
    for name, now, before in rows_in[:MAX_TABLE_ROWS]:
        change = "" if before is None else f"{now['accuracy'] - before['accuracy']:+.3f}"
        seen, changed = corrected.get(name, (0, 0))
        precision = now.get("precision")
        rows.append(
            [
                html.escape(name),
                int(now["n"]),
                f"{now['accuracy']:.3f}",
                "" if precision is None else f"{precision:.3f}",
                change,
                f"{changed / seen:.0%} of {seen}" if seen else "–",
            ]
        )
    caption = (
        "Held-out accuracy per slice of the serving version at publish (for a class: its recall; precision: "
        "of the tasks predicted as that class), its change from the version before, and the share of this "
        "version's pre-annotations annotators changed in the slice. Worst first. Slices are the classes and "
        "the values of the task fields named in HITL_SLICE_FIELDS; the gate refuses a candidate that makes "
        "one with enough held-out tasks significantly worse (see Candidates)."
    )
    return _section(
        "Slices",
        caption,
        ["slice", "held-out", "accuracy / recall", "precision", "vs previous", "pre-annotations changed"],
        rows,
    ) + _slice_history(data, rows_in)


def _slice_history(data: ProjectData, rows_in: list[tuple[str, dict[str, float], Any]], last: int = 6) -> str:
    """The same slices (worst first) across the latest versions: accuracy / recall on each version's
    held-out set, and the share of its pre-annotations annotators changed there."""
    versions = [m for m in data.versions if (m.get("metrics") or {}).get("slices")][-last:]
    if len(versions) < 2:
        return ""
    served = {m["version"]: served_name(m) for m in versions}
    corrected = {name: data.slice_corrections(name) for name in set(served.values())}
    rows = []
    for name, _, _ in rows_in[:MAX_TABLE_ROWS]:
        cells = [html.escape(name)]
        for m in versions:
            scores = m["metrics"]["slices"].get(name)
            seen, changed = corrected[served[m["version"]]].get(name, (0, 0))
            cells.append(
                ("–" if scores is None else f"{scores['accuracy']:.2f} of {int(scores['n'])}")
                + (f"; {changed / seen:.0%} changed" if seen else "")
            )
        rows.append(cells)
    return _section(
        "Slices across versions",
        "Each slice's held-out accuracy / recall per version (of how many "
        "held-out tasks), and the share of the pre-annotations shown under the version's name that "
        "annotators changed in the slice; the serving version's worst slices first.",
        ["slice", *(html.escape(m["version"]) for m in versions)],
        rows,
    )


def _drift(data: ProjectData) -> str:
    """Checks of newly imported tasks against the project's reference sample, latest first."""
    if not data.drift_checks:
        return ""
    rows = [
        [
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(c["recorded_at"])),
            html.escape(str(c["model_version"])),
            c["size"],
            f"{c['p_outputs']:.3g}",
            f"{c['p_embeddings']:.3g}",
            "<b>drift</b>" if c["alarm"] else "none",
        ]
        for c in data.drift_checks[::-1][:MAX_TABLE_ROWS]
    ]
    caption = (
        "Each batch of newly imported tasks against the pool the project started with: p-values of the tests "
        "on predicted probabilities and on embeddings (an alarm below half the false-alarm rate); drifted "
        "tasks are put in front of annotators as drift probes."
    )
    headers = ["checked (UTC)", "version", "tasks", "p (probabilities)", "p (embeddings)", "found"]
    standing = data.standing_drift()
    raised = (
        (
            f"<p><b>Drift alarm standing ({', '.join(standing)})</b>: until a check of that kind passes again, "
            "the sync sends twice the usual share (HITL_AUDIT_SHARE) of auto_accept tasks to people as audit "
            "samples, when auto_accept is on; after an alarm on imports, the drifted tasks stay in the queue as "
            "drift probes.</p>"
        )
        if standing
        else ""
    )
    return _section("Drift", caption, headers, rows) + raised


def _section(title: str, caption: str, headers: list[str], rows: list[list[Any]]) -> str:
    """A titled table; cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{title}</h2><p class=cap>{caption}</p><table><tr>{head}</tr>{body}</table>"


def _label_errors(data: ProjectData) -> str:
    """The latest label check (the most suspicious annotations, with the label suggested) and what
    reviewers did with the flags, per version that raised them."""
    if not data.label_checks:
        return ""
    last = data.label_checks[-1]
    rows = "".join(
        f"<tr><td>{s['task_id']}</td><td>{html.escape(s['given'])}</td><td>{html.escape(s['suggested'])}</td>"
        f"<td>{s['quality']:.3f}</td><td>{html.escape(s.get('reason') or 'model disagrees')}</td>"
        f"<td>{', '.join(map(str, s['neighbours']))}</td></tr>"
        for s in last["suspects"][:MAX_TABLE_ROWS]
    )
    head = (
        f"{len(last['suspects'])} probable label errors among {last['annotated']} annotated tasks "
        f"(checked with {html.escape(str(last['version']))}; most suspicious first; in Label Studio: the "
        f'tab "Suspected label errors (hitl)")'
    )
    table = (
        (
            "<table><tr><th>task</th><th>labeled</th><th>suggested</th><th>label quality</th><th>why</th>"
            f"<th>nearest tasks with the suggested label</th></tr>{rows}</table>"
        )
        if rows
        else ""
    )
    return f"<h2>Probable label errors</h2><p>{head}.</p>{table}{_verdicts(data)}"


def _verdicts(data: ProjectData) -> str:
    by_version: dict[str, Counter[str]] = {}
    for v in data.label_verdicts:
        by_version.setdefault(str(v.get("version")), Counter())[v["verdict"]] += 1
    if not by_version:
        return "<p class=cap>No reviewer has acted on a flag yet.</p>"
    rows = [
        [
            html.escape(name),
            sum(c.values()),
            c["changed"],
            c["kept"],
            c["removed"],
            f"{c['changed'] / max(sum(c.values()), 1):.0%}",
        ]
        for name, c in sorted(by_version.items())
    ]
    return _section(
        "Reviewers' verdicts on flags",
        "per version that raised the flag; changed = the reviewer "
        "changed the label, kept = submitted it unchanged (not flagged again)",
        ["flagged by", "decided", "changed", "kept", "annotation removed", "share changed"],
        rows,
    )


def _annotators(data: ProjectData) -> str:
    """Agreement between annotators and each one's quality (CROWDLAB), from the latest check."""
    if not data.annotator_checks:
        return ""
    last = data.annotator_checks[-1]["summary"]
    rows = [
        [html.escape(a["annotator"]), a["labeled"], f"{a['agreement']:.0%}", f"{a['quality']:.2f}"]
        for a in sorted(last["annotators"], key=lambda a: a["quality"])
    ]
    return _section(
        "Annotators",
        f"{last['multi_annotated']} tasks with several annotators' answers; mean agreement "
        f"with the consensus {last['mean_agreement']:.0%}. Quality: cleanlab's CROWDLAB estimate "
        "(agreement with the consensus, weighted by the model's out-of-sample view); lowest first",
        ["annotator (Label Studio user id)", "tasks labeled", "agrees with consensus", "quality"],
        rows,
    )


def _proposals(data: ProjectData) -> str:
    """Batch corrections: proposals made, what reviewers accepted or rejected, labels saved."""
    if not data.proposals:
        return ""
    outcomes = Counter(o["outcome"] for p in data.proposals for o in p["outcomes"].values())
    made = [p for p in data.proposals if p["task_ids"]]
    proposed = sum(len(p["task_ids"]) for p in made)
    decided = outcomes["accepted"] + outcomes["rejected"]
    precision = f"{outcomes['accepted'] / decided:.0%}" if decided else "n/a"
    rows = [
        [
            p["proposal_id"],
            p["source_task"],
            html.escape(p["wrong_label"]),
            html.escape(p["label"]),
            len(p["task_ids"]),
            sum(o["outcome"] == "accepted" for o in p["outcomes"].values()),
            sum(o["outcome"] == "rejected" for o in p["outcomes"].values()),
            sum(o["outcome"] == "expired" for o in p["outcomes"].values()),
        ]
        for p in made[-MAX_TABLE_ROWS:][::-1]
    ]
    caption = (
        f"{len(data.proposals)} corrections looked at, {len(made)} with similar tasks: {proposed} tasks "
        f"proposed, {outcomes['accepted']} accepted, {outcomes['rejected']} rejected, {outcomes['expired']} "
        f"expired, {outcomes['model label taken']} annotated from the model's own (corrected) label by "
        f"mistake; accepted share of those decided {precision}; labels saved per correction "
        f"{outcomes['accepted'] / len(data.proposals):.2f}"
    )
    return _section(
        "Batch corrections",
        caption,
        ["proposal", "corrected task", "from", "to", "tasks", "accepted", "rejected", "expired"],
        rows,
    )


def write_report(
    project_id: int,
    audit: AuditStore,
    registry: Registry,
    state: Path | str,
    out: Path,
    target: float = 0.98,
    holdout_fraction: float = 0.15,
    min_eval: int = 20,
    retrains: str | None = None,
) -> Path:
    data = collect(project_id, audit, registry, state, target, holdout_fraction, min_eval)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, retrains=retrains), encoding="utf-8")
    return out
