"""The public API: ``__all__`` is complete and sorted (as httpx checks its own)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import asgi_adminstats


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions (ruff's RUF022 order)."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_is_complete_and_sorted() -> None:
    # dir(), not vars(): the uvicorn helpers (asgi_adminstats.server) load on first use.
    public = {
        name
        for name in dir(asgi_adminstats)
        if not name.startswith("_")
        and not isinstance(getattr(asgi_adminstats, name), types.ModuleType)
    }
    assert public | {"__version__"} == set(asgi_adminstats.__all__)
    assert asgi_adminstats.__all__ == sorted(asgi_adminstats.__all__, key=_isort_key)


def test_every_name_resolves() -> None:
    for name in asgi_adminstats.__all__:
        assert getattr(asgi_adminstats, name) is not None


def test_importing_the_package_does_not_import_uvicorn() -> None:
    code = (
        "import sys, asgi_adminstats; "
        "assert 'uvicorn' not in sys.modules, sorted(m for m in sys.modules if 'uvicorn' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _exception_classes() -> set[type[BaseException]]:
    """Every exception class defined in the package, found by importing each module."""
    found: set[type[BaseException]] = set()
    for module in pkgutil.walk_packages(asgi_adminstats.__path__, "asgi_adminstats."):
        if module.name.endswith(".__main__"):  # runs the command line when imported
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("asgi_adminstats.")
            ):
                found.add(value)
    return found


def test_every_exception_derives_from_adminstats_error() -> None:
    classes = _exception_classes()
    # The walk found the ones defined all over the package (a sample, not the list).
    assert {
        asgi_adminstats.SettingsError,
        asgi_adminstats.AuthError,
        asgi_adminstats.CollectorFailure,
        asgi_adminstats.PayloadTooLarge,
    } <= classes
    assert [
        c.__qualname__ for c in classes if not issubclass(c, asgi_adminstats.AdminStatsError)
    ] == []


def test_exceptions_keep_their_builtin_bases() -> None:
    # Code that catches ValueError or RuntimeError today still catches them.
    assert issubclass(asgi_adminstats.SettingsError, ValueError)
    assert issubclass(asgi_adminstats.PayloadTooLarge, ValueError)
    assert issubclass(asgi_adminstats.NotStartedError, RuntimeError)
    assert issubclass(asgi_adminstats.StartupError, RuntimeError)
