"""Run the app under gunicorn (production) or Flask's dev server."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from backend.settings import Settings

log = logging.getLogger(__name__)

# Above Label Studio's predict timeout (100 s) so gunicorn never kills a request LS still waits on.
WORKER_TIMEOUT_S = 130


class OpenOnPublicAddress(SystemExit):
    """Refusal to serve without authentication on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def check_open(settings: Settings, host: str, port: int) -> None:
    """Without basic auth, serve on loopback only, unless HITL_ALLOW_OPEN=true says it is meant."""
    if settings.auth_enabled:
        return
    if not is_loopback(host) and not settings.allow_open:
        raise OpenOnPublicAddress(
            f"refusing to serve on {host}:{port} without authentication: anyone who can reach it could read "
            "predictions and trigger retrains. Set HITL_BASIC_AUTH_USER and HITL_BASIC_AUTH_PASSWORD (and the same "
            "credentials on Label Studio's ML backend connection), bind to 127.0.0.1, or set HITL_ALLOW_OPEN=true "
            "if another layer (a proxy, a private network) authenticates"
        )
    log.warning(
        "HITL_BASIC_AUTH_USER/HITL_BASIC_AUTH_PASSWORD are not set: every endpoint is open to anyone "
        "who can reach %s:%s",
        host,
        port,
    )


def check_label_studio(settings: Settings) -> None:
    """A loud warning at start when Label Studio refuses the token or cannot be reached: otherwise
    the server looks fine while every annotation webhook waits for a confirmation that cannot come."""
    from backend.stores.labelstudio import LabelStudioClient, LabelStudioNotConfigured

    try:
        problem = LabelStudioClient.from_settings(settings, 5).token_problem()
    except LabelStudioNotConfigured:
        return  # said by `hitl run`; a serve-only set-up may mean it
    if problem:
        log.warning(
            "!!! %s. Until this is fixed, annotation webhooks are kept (not queued) and nothing retrains; "
            "/ready says the same",
            problem,
        )


def threads_per_worker(settings: Settings, workers: int) -> int:
    """torch threads for each gunicorn worker: the cores shared out, so N workers do not each start
    a thread per core and thrash (an explicit HITL_TORCH_THREADS wins)."""
    return settings.torch_threads or max(1, (os.cpu_count() or 1) // max(workers, 1))


def serve(settings: Settings, host: str | None, port: int | None, workers: int = 1, dev: bool = False) -> int:
    host = host or settings.host
    port = port or settings.port
    check_open(settings, host, port)
    check_label_studio(settings)
    # the bound host is a name the server answers to (server/auth.py)
    settings = settings.model_copy(update={"torch_threads": threads_per_worker(settings, workers), "host": host})
    if dev:
        from backend.server.app import create_app

        create_app(settings).run(host=host, port=port, threaded=True)
        return 0

    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    class _OneFormat(Logger):  # type: ignore[misc]
        """gunicorn's own lines (start, signals, "Shutting down") through the root handler, so they
        carry the same timestamp and format as every other line (``backend/logs.py``)."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            self.error_log.handlers[:] = []
            self.error_log.propagate = True

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
                "logger_class": _OneFormat,
            }
            # gunicorn 25.1+ opens a control socket at one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
            # ~/.gunicorn/gunicorn.ctl): a second instance on the machine replaced the first one's. Nothing
            # here uses gunicornc, so there is none.
            if "control_socket_disable" in self.cfg.settings:
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from backend.server.app import create_app

            return create_app(settings)

    _Gunicorn().run()
    return 0
