"""The public API: ``__all__`` is complete and sorted (as httpx checks its own)."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil
import subprocess
import sys
import types

import pytest

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


_PACKAGE_DIR = pathlib.Path(asgi_adminstats.__file__).parent


def _subpackages() -> list[str]:
    return sorted(p.parent.name for p in _PACKAGE_DIR.glob("*/__init__.py"))


def test_at_most_a_dozen_modules_at_the_top_level() -> None:
    # The file list shows the design: concerns are sub-packages, not more flat modules.
    modules = sorted(p.name for p in _PACKAGE_DIR.glob("*.py"))
    assert len(modules) <= 12, modules


@pytest.mark.parametrize("name", _subpackages())
def test_each_subpackage_exports_a_sorted_all(name: str) -> None:
    package = importlib.import_module(f"asgi_adminstats.{name}")
    exported = package.__all__
    assert exported == sorted(exported, key=_isort_key)
    for attribute in exported:
        assert getattr(package, attribute) is not None


def _imported_modules(path: pathlib.Path) -> list[str]:
    """Absolute names of the package modules ``path`` imports (relative imports resolved)."""
    module = ".".join(("asgi_adminstats", *path.relative_to(_PACKAGE_DIR).with_suffix("").parts))
    package = module.rpartition(".")[0]  # of an __init__.py: the package itself
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found += [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.startswith("asgi_adminstats.")]


def test_private_modules_are_imported_only_inside_their_subpackage() -> None:
    # Each sub-package's __init__ is what the rest of the package may use.
    leaks = []
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        here = path.relative_to(_PACKAGE_DIR).parts
        for name in _imported_modules(path):
            parts = name.split(".")[1:]
            private = len(parts) >= 2 and parts[1].startswith("_") and parts[1] != "__init__"
            if private and here[0] != parts[0]:
                leaks.append(f"{'/'.join(here)} imports {name}")
    assert leaks == []


#: The layout's bounds (issue 10): past them a module or a class holds more than one
#: concern, and the file list stops showing the design.
_MAX_MODULE_LINES = 300
_MAX_CLASS_LINES = 250


def test_no_module_or_class_outgrows_one_concern() -> None:
    too_big = []
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        source = path.read_text()
        name = "/".join(path.relative_to(_PACKAGE_DIR).parts)
        if (lines := len(source.splitlines())) > _MAX_MODULE_LINES:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > _MAX_CLASS_LINES:
                    too_big.append(f"{name}: class {node.name}: {size} lines")
    assert too_big == []


#: Where the project's own code lives; it imports itself by these folders' module names
#: (pytest's pythonpath is . and tests; bench's scripts run from bench/).
_PROJECT_DIR = _PACKAGE_DIR.parent
_TREES = ("asgi_adminstats", "sample_app", "support", "bench", "tests")


def _own_modules() -> set[str]:
    own = {"__future__"}
    for folder in (_PROJECT_DIR, _PROJECT_DIR / "tests", _PROJECT_DIR / "bench"):
        own |= {p.stem for p in folder.glob("*.py")}
        own |= {p.parent.name for p in folder.glob("*/__init__.py")}
    return own


def _imports(source: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of each absolute import, an imported name included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_no_private_module_of_a_dependency_is_imported() -> None:
    # A dependency's private module or name (starlette._utils, broadcaster._backends)
    # changes in any release without notice: only public API, everywhere in the project.
    own = _own_modules()
    assert {"asgi_adminstats", "sample_app", "support", "helpers"} <= own
    private = []
    for tree in _TREES:
        for path in sorted((_PROJECT_DIR / tree).rglob("*.py")):
            for line, name in _imports(path.read_text()):
                first, *rest = name.split(".")
                if first not in own and any(part.startswith("_") for part in (first, *rest)):
                    private.append(f"{path.relative_to(_PROJECT_DIR)}:{line}: {name}")
    assert private == []
