"""The retrain jobs waiting per project (with how long) and their last durations, read from Redis:
one line per project for the dashboard's overview, its project pages and ``hitl report``."""

from __future__ import annotations

import time

from backend.ids import JobKind
from backend.jobs.queue import RetrainQueue

NO_QUEUE = "not read: no queue configured (HITL_REDIS_URL)"


def retrain_lines(queue: RetrainQueue | None, projects: list[int]) -> dict[int, str]:
    """Per project, in words (plain text: the caller escapes it). A Redis that cannot be read is
    said, not raised: the stores still have everything else to show."""
    if queue is None:
        return dict.fromkeys(projects, NO_QUEUE)
    try:
        durations = queue.durations()
        pending = {(p, kind): queue.pending_since(p, kind) for p in projects for kind in JobKind}
    except Exception as exc:
        return dict.fromkeys(projects, f"queue unavailable ({type(exc).__name__})")
    now, out = time.time(), {}
    for project in projects:
        waiting = [
            f"{kind} queued {now - since:.0f} s ago"
            for (p, kind), since in pending.items()
            if p == project and since is not None
        ]
        last = [
            f"{kind} {outcome} in {seconds:.1f} s"
            for (p, kind, outcome), seconds in sorted(durations.items())
            if p == str(project)
        ]
        out[project] = "; ".join(waiting or ["none queued"]) + (" · last: " + ", ".join(last) if last else "")
    return out
