"""Host apps for the host x server matrix (tests/hosts/): the component mounted the way
a user of each framework wires it, the tested form of the README's snippets.

Each target is importable with the checkout on ``PYTHONPATH`` and takes all of the
component's settings from ``ADMINSTATS_*`` variables (``Settings.from_env()``). Each
serves the component at ``/admin/ws``, ``GET /`` (``host: <name>``) and
``POST /action?target=<id>`` (records ``MATRIX_ACTION``, answers ``{"recorded": true}``).
The Django and Channels hosts configure Django in-module: one of them per process.
"""

from __future__ import annotations

__all__ = ["ACTION", "HOSTS"]

#: Host name -> ASGI target (``module:attribute``), as a server's command line takes it.
HOSTS: dict[str, str] = {
    "starlette": "support.hosts.starlette_host:app",
    "fastapi": "support.hosts.fastapi_host:app",
    "django": "support.hosts.django_host:app",
    "channels": "support.hosts.channels_host:app",
    "litestar": "support.hosts.litestar_host:app",
    "quart": "support.hosts.quart_host:app",
}

#: What ``POST /action`` records: ``record_action(*ACTION, target)``.
ACTION = ("MATRIX_ACTION", "matrix", "PLAYER")
