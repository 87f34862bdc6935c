"""``python -m asgi_adminstats.cli``, as when the command line was a single module."""

from ._main import main

__all__: list[str] = []

raise SystemExit(main())
