"""The ``adminstats`` command line (the console script, ``python -m asgi_adminstats``):
``main`` parses and dispatches, ``mint_token`` is there for scripts and tests too."""

from ._commands import mint_token
from ._main import main

__all__ = ["main", "mint_token"]
