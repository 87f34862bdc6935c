"""The HTTP side of the mount: the endpoints (426, /health, /metrics, /admission, the
client files, the admin check), mount-path routing and ``AdminStats.routes()``, and the
lifespan protocol of a top-level app."""

from ._endpoints import Endpoints, health_report, metric_state
from ._lifespan import serve_lifespan
from ._routing import (
    BareRoutes,
    component_path,
    route_bare_paths,
    route_path,
    routes_at,
    with_root_path,
)

__all__ = [
    "BareRoutes",
    "Endpoints",
    "component_path",
    "health_report",
    "metric_state",
    "route_bare_paths",
    "route_path",
    "routes_at",
    "serve_lifespan",
    "with_root_path",
]
