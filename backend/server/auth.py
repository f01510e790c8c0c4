"""Who may call what.

- ``/health`` is always open (Label Studio probes it without credentials).
- ``/webhook`` and ``/train`` accept the shared secret header (Label Studio webhooks can send
  custom headers) or basic auth.
- Everything else needs HTTP basic auth, the scheme Label Studio uses for ML backend connections.
Nothing is required while neither credential is configured (the server warns at start-up).
"""

from __future__ import annotations

import hmac

from flask import Request

from backend.settings import Settings

OPEN_PATHS = frozenset({"/health"})
EVENT_PATHS = frozenset({"/webhook", "/train"})
SECRET_HEADER = "X-Hitl-Webhook-Secret"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _basic_ok(request: Request, settings: Settings) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
        return False
    assert settings.basic_auth_user is not None and settings.basic_auth_password is not None
    return _same(auth.username, settings.basic_auth_user) & _same(
        auth.password, settings.basic_auth_password.get_secret_value()
    )


def is_authorized(request: Request, settings: Settings) -> bool:
    if request.path in OPEN_PATHS:
        return True
    if request.path in EVENT_PATHS and settings.webhook_secret is not None:
        sent = request.headers.get(SECRET_HEADER)
        if sent is not None and _same(sent, settings.webhook_secret.get_secret_value()):
            return True
        return settings.auth_enabled and _basic_ok(request, settings)
    if not settings.auth_enabled:
        return True
    return _basic_ok(request, settings)
