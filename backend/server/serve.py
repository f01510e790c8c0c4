"""Run the app under gunicorn (production) or Flask's dev server."""

from __future__ import annotations

import logging
import os
from typing import Any

from backend.settings import Settings

log = logging.getLogger(__name__)

# Above Label Studio's predict timeout (100 s) so gunicorn never kills a request LS still waits on.
WORKER_TIMEOUT_S = 130


def warn_if_open(settings: Settings) -> None:
    if not settings.auth_enabled:
        log.warning(
            "HITL_BASIC_AUTH_USER/HITL_BASIC_AUTH_PASSWORD are not set: every endpoint is open to anyone "
            "who can reach %s:%s",
            settings.host,
            settings.port,
        )


def threads_per_worker(settings: Settings, workers: int) -> int:
    """torch threads for each gunicorn worker: the cores shared out, so N workers do not each start
    a thread per core and thrash (an explicit HITL_TORCH_THREADS wins)."""
    return settings.torch_threads or max(1, (os.cpu_count() or 1) // max(workers, 1))


def serve(settings: Settings, host: str | None, port: int | None, workers: int = 1, dev: bool = False) -> int:
    host = host or settings.host
    port = port or settings.port
    warn_if_open(settings)
    settings = settings.model_copy(update={"torch_threads": threads_per_worker(settings, workers)})
    if dev:
        from backend.server.app import create_app

        create_app(settings).run(host=host, port=port, threaded=True)
        return 0

    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                # Threads overlap /health and /setup (answered from memory) with a running /predict.
                "threads": 4,
                "timeout": WORKER_TIMEOUT_S,
                "graceful_timeout": 30,
                "accesslog": None,
                "loglevel": settings.log_level.lower(),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from backend.server.app import create_app

            return create_app(settings)

    _Gunicorn().run()
    return 0
