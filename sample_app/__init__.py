"""A small browser-game backend that demos ``asgi_adminstats`` (run ``python -m sample_app``)."""

from .app import create_app

__all__ = ["create_app"]
