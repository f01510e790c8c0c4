"""Optional HTTP basic auth, the scheme Label Studio uses for ML backend connections."""

from __future__ import annotations

import hmac

from flask import Request

from backend.settings import Settings

OPEN_PATHS = frozenset({"/health"})


def is_authorized(request: Request, settings: Settings) -> bool:
    if not settings.auth_enabled or request.path in OPEN_PATHS:
        return True
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
        return False
    assert settings.basic_auth_user is not None and settings.basic_auth_password is not None
    user_ok = hmac.compare_digest(auth.username.encode(), settings.basic_auth_user.encode())
    password_ok = hmac.compare_digest(auth.password.encode(), settings.basic_auth_password.get_secret_value().encode())
    return user_ok and password_ok
