"""Who may call what.

- ``/health`` is always open (Label Studio probes it without credentials).
- ``/webhook`` and ``/train`` accept the shared secret header (Label Studio webhooks can send
  custom headers) or basic auth.
- Everything else needs HTTP basic auth, the scheme Label Studio uses for ML backend connections.
Nothing is required while neither credential is configured (the server warns at start-up).

Without basic auth, a request must also name this server in its ``Host`` header: a loopback name,
an IP address, the bound host or one of ``HITL_ALLOWED_HOSTS``. Otherwise a web page could rebind
its own DNS name to 127.0.0.1 and, from any browser on this machine, read ``/dashboard`` and post
to ``/predict`` and ``/webhook`` (the browser sends the page's name as the Host).
"""

from __future__ import annotations

import hmac
import ipaddress

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


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def host_name(host: str) -> str:
    """The name in a Host header: lower case, without port, brackets or a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:9090
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(host: str, settings: Settings) -> bool:
    """Whether a request naming ``host`` may be answered (DNS rebinding, see above). With basic auth
    on, a rebinding page has no credentials: every host is answered unless HITL_ALLOWED_HOSTS is set."""
    allowed = {host_name(h) for h in settings.allowed_hosts.split(",") if h.strip()}
    if "*" in allowed or (settings.auth_enabled and not allowed):
        return True
    name = host_name(host)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # an address, not a name: no DNS to rebind (a page's origin would be the address itself)
    except ValueError:
        pass
    return name in LOOPBACK_NAMES or name == host_name(settings.host) or name in allowed
