"""What ``/predict`` is asked about, kept for the drift check.

The server appends the texts of each text-classification request to a capped Redis list per
project; the sync job takes them once a window's worth has arrived and tests the latest window
against the project's reference sample (``monitoring/drift_monitor.py``), as it tests newly imported
tasks. Texts are cut to ``MAX_CHARS`` and at most ``MAX_KEPT`` stay, so the list is small, and
they leave Redis as soon as they are taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from backend.ids import ProjectId

KEY = "hitl:predict-inputs:{project}"
MAX_KEPT = 2000
MAX_CHARS = 2000
KEPT_S = 7 * 24 * 3600  # inputs nobody checked within a week are dropped


class PredictInputs:
    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    @classmethod
    def for_server(cls, url: str) -> PredictInputs:
        """A connection that gives up fast: a slow Redis must not slow ``/predict`` down."""
        return cls(redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25))

    def record(self, project: ProjectId, texts: Sequence[str]) -> None:
        if not texts:
            return
        key = KEY.format(project=project)
        pipe = self.connection.pipeline()
        pipe.lpush(key, *[text[:MAX_CHARS] for text in texts])
        pipe.ltrim(key, 0, MAX_KEPT - 1)
        pipe.expire(key, KEPT_S)
        pipe.execute()

    def take(self, project: ProjectId, window: int) -> list[str]:
        """The latest ``window`` texts, once at least that many are waiting (else none); everything
        waiting is removed with them, in one transaction."""
        key = KEY.format(project=project)
        if window <= 0 or self.connection.llen(key) < window:
            return []
        pipe = self.connection.pipeline(transaction=True)
        pipe.lrange(key, 0, window - 1)
        pipe.delete(key)
        latest, _ = pipe.execute()
        return [item.decode("utf-8", "replace") for item in latest]
