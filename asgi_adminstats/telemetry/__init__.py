"""What operators see: the component's loggers (every argument escaped) and its
Prometheus metrics."""

from ._logging import EscapeArgs, escape, get_logger
from ._metrics import CONTENT_TYPE, LANES, Metrics, State, Tally

__all__ = [
    "CONTENT_TYPE",
    "LANES",
    "EscapeArgs",
    "Metrics",
    "State",
    "Tally",
    "escape",
    "get_logger",
]
