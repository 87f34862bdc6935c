"""Channels: ``ProtocolTypeRouter`` giving the component the lifespan, the WebSocket at
``/admin/ws`` and ``/admin/ws/``, and its HTTP paths before the Django app.

The WebSocket side needs no ``AllowedHostsOriginValidator`` (the component checks
``Origin`` against its own allow-list, 403 before the upgrade) nor ``AuthMiddlewareStack``
(it verifies its own bearer tokens, not Django sessions).
"""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import re_path

from asgi_adminstats import AdminStats, Settings

from ._django import configure, urls

__all__ = ["app", "stats", "urlpatterns"]

configure(__name__)  # ROOT_URLCONF: this module's urlpatterns
django_app = get_asgi_application()  # before anything imports models (Channels' advice)

stats = AdminStats(Settings.from_env())
urlpatterns = urls("channels", stats)  # GET /, POST /action

app = ProtocolTypeRouter(
    {
        "lifespan": stats,
        "http": URLRouter([re_path(r"^admin/ws(?:/|$)", stats), re_path(r"", django_app)]),
        "websocket": URLRouter([re_path(r"^admin/ws/?$", stats)]),
    }
)
