"""Django configured in-module for the Django and Channels hosts: minimal settings, the
two async views. Django's settings are per process: one of those hosts per process."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from asgi_adminstats import AdminStats

from . import ACTION

__all__ = ["configure", "urls"]


def configure(urlconf: str) -> None:
    """``settings.configure`` with what these hosts need, then ``django.setup()``."""
    if settings.configured:
        raise RuntimeError(
            f"Django is configured already ({settings.ROOT_URLCONF}): one Django host per process"
        )
    settings.configure(
        DEBUG=False,
        SECRET_KEY="matrix-host-django-key",  # sessions and CSRF; no secret is kept here
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=urlconf,
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()


def urls(host: str, stats: AdminStats) -> list[Any]:
    """``urlpatterns``: ``GET /`` and ``POST /action``, async views."""

    async def home(request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"host: {host}", content_type="text/plain")

    async def action(request: HttpRequest) -> HttpResponse:
        await stats.record_action(*ACTION, request.GET.get("target"))
        return JsonResponse({"recorded": True})

    # Called, not decorated: Django is untyped here, and strict mypy refuses untyped
    # decorators on a typed function.
    return [path("", home), path("action", csrf_exempt(require_POST(action)))]
