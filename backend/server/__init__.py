"""The HTTP side: Label Studio's ML backend protocol on a Flask application factory.

``create_app`` is imported on first use: ``backend.server.auth`` (the webhook header's name, which
``hitl configs`` needs) must not pull in the app, its model code and torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from backend.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
