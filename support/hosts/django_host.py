"""Django 5: the ASGI application wrapped in ``AdminStatsMiddleware``, which serves
``/admin/ws`` before Django routes and starts the component (Django answers no lifespan)."""

from __future__ import annotations

from django.core.asgi import get_asgi_application

from asgi_adminstats import AdminStats, AdminStatsMiddleware, Settings

from ._django import configure, urls

__all__ = ["app", "stats", "urlpatterns"]

configure(__name__)  # ROOT_URLCONF: this module's urlpatterns

stats = AdminStats(Settings.from_env())
urlpatterns = urls("django", stats)  # GET /, POST /action

app = AdminStatsMiddleware(get_asgi_application(), path="/admin/ws", stats=stats)
