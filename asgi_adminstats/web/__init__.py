"""The HTTP side of the mount: the endpoints (426, /health, /metrics, the client files,
the admin check) and mount-path routing."""

from ._endpoints import Endpoints, health_report
from ._routing import route_bare_paths, route_path, with_root_path

__all__ = ["Endpoints", "health_report", "route_bare_paths", "route_path", "with_root_path"]
