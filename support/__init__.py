"""Code that tests/ and bench/ share, so that neither imports the other.

``loopback``: settings, tokens, a uvicorn server on a free loopback port and real
WebSocket clients; ``demo_db``: the default schema with a few rows; ``services``: the real
Redis and PostgreSQL; ``wire``: the WebSocket handshake and frames written by hand; ``rss``: a
process's peak RSS while a block runs. Not
part of the package (setup.cfg packages only ``asgi_adminstats``); importable with the
repository root on ``sys.path`` (pytest's ``pythonpath = .``; the bench scripts add it).
"""

__all__: list[str] = []
