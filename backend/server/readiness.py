"""``/ready``'s Label Studio line: ok, or what is wrong, and since when it has been unreachable.

The server asks Label Studio itself (cached: at most once per ``LABEL_STUDIO_CHECK_S``) and reads
the mark the workers leave when their jobs cannot reach it (``jobs/outage.py``): an outage shows
at the first failed retrain, not only at the server's next probe.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis import RedisError

from backend.jobs.outage import unreachable_since
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.jobs.queue import RetrainQueue

LABEL_STUDIO_CHECK_S = 30.0  # /ready asks Label Studio at most this often


def label_studio_check(settings: Settings, queue: RetrainQueue | None = None) -> Callable[[], str]:
    """ "ok", or why Label Studio cannot be used (not configured, token refused, unreachable since
    when): a wrong token or a down Label Studio otherwise looks ready while corrections wait."""
    from backend.stores.labelstudio import LabelStudioClient, LabelStudioNotConfigured, Unreachable

    cached: dict[str, Any] = {"at": -LABEL_STUDIO_CHECK_S, "answer": "", "down_since": None}

    def check() -> str:
        if time.monotonic() - cached["at"] >= LABEL_STUDIO_CHECK_S:
            try:
                problem = LabelStudioClient.from_settings(settings, 5).token_problem()
            except LabelStudioNotConfigured:
                problem = "not configured (HITL_LABEL_STUDIO_URL, HITL_LABEL_STUDIO_API_KEY): nothing retrains"
            down = isinstance(problem, Unreachable)
            cached.update(
                at=time.monotonic(),
                answer=problem or "ok",
                down_since=(cached["down_since"] or time.time()) if down else None,
            )
        workers = None
        if queue is not None:
            with contextlib.suppress(RedisError):
                workers = unreachable_since(queue.connection)
        if cached["down_since"] is None and workers is None:
            return str(cached["answer"])
        since = min(t for t in (cached["down_since"], workers and workers[0]) if t)
        seen_by = (
            "this server and the workers"
            if cached["down_since"] and workers
            else ("the workers' jobs" if workers else "this server")
        )
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
        return (
            f"unreachable since {stamp}: Label Studio at {settings.label_studio_url} cannot be reached "
            f"(seen by {seen_by}); corrections wait and their jobs are retried"
        )

    return check
