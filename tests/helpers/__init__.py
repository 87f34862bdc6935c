"""Helpers that only the tests use: hostile clients, a cluster harness, an OpenID provider.

What bench/ needs too lives in support/ at the repository root; the fixtures stay in
tests/conftest.py.
"""

__all__: list[str] = []
