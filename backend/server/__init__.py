"""The HTTP side: Label Studio's ML backend protocol on a Flask application factory."""

from backend.server.app import create_app

__all__ = ["create_app"]
