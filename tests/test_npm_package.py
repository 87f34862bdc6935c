"""The npm package in js/ (issue 14), checked without npm: its version is the Python
package's, its ``exports`` and peer dependency have the promised shape, its build copies
the very files the Python package serves, and the lock files match their package.json.
js/ci.sh builds, packs and tests it with npm (the hook on React 18 and 19)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import httpx2
import pytest

import asgi_adminstats

from support.loopback import make_settings, serve, starlette_host

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "js"
EXAMPLE = ROOT / "examples" / "vite-react"
REACT_18 = JS / "test" / "react-18"
STATIC = ROOT / "asgi_adminstats" / "static"

#: What build.mjs copies into dist/: the served modules come from asgi_adminstats/static.
BUILT_FROM = {
    "adminstats.js": STATIC / "adminstats.js",
    "use-admin-websocket.js": STATIC / "use-admin-websocket.js",
    "react.js": JS / "src" / "react.js",
    "adminstats.d.ts": JS / "types" / "adminstats.d.ts",
    "use-admin-websocket.d.ts": JS / "types" / "use-admin-websocket.d.ts",
    "react.d.ts": JS / "types" / "react.d.ts",
    "LICENSE": ROOT / "LICENSE",
}
#: The Python package's paths below the mount, and the module each serves.
SERVED = {"/client.js": "adminstats.js", "/use-admin-websocket.js": "use-admin-websocket.js"}


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_version_and_license_are_the_python_packages() -> None:
    package = _json(JS / "package.json")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert package["name"] == pyproject["name"] == "asgi-adminstats"
    assert package["version"] == asgi_adminstats.__version__
    assert package["license"] == pyproject["license"]


def test_exports_types_and_the_optional_react_peer() -> None:
    package = _json(JS / "package.json")
    assert package["type"] == "module"
    assert package["files"] == ["dist"]
    assert package["types"] == "./dist/adminstats.d.ts"
    entries = {
        ".": "adminstats",
        "./react": "react",
        "./use-admin-websocket": "use-admin-websocket",
    }
    for entry, stem in entries.items():
        # "types" first: TypeScript takes the first condition that matches.
        assert list(package["exports"][entry]) == ["types", "default"], entry
        assert package["exports"][entry] == {
            "types": f"./dist/{stem}.d.ts",
            "default": f"./dist/{stem}.js",
        }
    assert package["peerDependencies"] == {"react": ">=18"}
    assert package["peerDependenciesMeta"] == {"react": {"optional": True}}
    assert "react" not in package.get("dependencies", {})
    assert package["scripts"]["prepack"] == "node build.mjs"


def test_the_build_copies_the_served_files() -> None:
    source = (JS / "build.mjs").read_text()
    copied = {
        name: folder
        for folder, name in re.findall(r'\[join\((STATIC|HERE, "src"), "([\w.-]+)"\)', source)
    }
    assert copied == {
        "adminstats.js": "STATIC",
        "use-admin-websocket.js": "STATIC",
        "react.js": 'HERE, "src"',
    }
    assert 'const STATIC = join(ROOT, "asgi_adminstats", "static");' in source
    assert set(SERVED.values()) <= copied.keys()
    for path in BUILT_FROM.values():
        assert path.is_file(), path
    # The `./react` entry adds React and nothing else: the rest is the served code.
    entry = (JS / "src" / "react.js").read_text()
    imports = re.findall(r'^(?:import|export) .* from "([^"]+)";', entry, re.MULTILINE)
    assert sorted(set(imports)) == ["./adminstats.js", "./use-admin-websocket.js", "react"]


async def test_the_mount_serves_what_the_package_ships(tmp_path: Path) -> None:
    stats = asgi_adminstats.AdminStats(make_settings(tmp_path))
    async with serve(starlette_host(stats)) as addr, httpx2.AsyncClient() as http:
        for path, name in SERVED.items():
            response = await http.get(f"http://{addr}/admin/ws{path}")
            assert response.status_code == 200, path
            assert response.content == BUILT_FROM[name].read_bytes(), path


@pytest.mark.parametrize("folder", [JS, REACT_18, EXAMPLE], ids=lambda p: str(p.relative_to(ROOT)))
def test_locked_dependencies_are_exact_and_match_package_json(folder: Path) -> None:
    package = _json(folder / "package.json")
    lock = _json(folder / "package-lock.json")
    declared = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    for name, version in declared.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version}: not an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    root = lock["packages"][""]
    assert {**root.get("dependencies", {}), **root.get("devDependencies", {})} == declared


def test_react_18_and_19_are_what_the_hook_is_tested_on() -> None:
    js = _json(JS / "package.json")["devDependencies"]
    react_18 = _json(REACT_18 / "package.json")["dependencies"]
    assert js["react"].startswith("19.") and js["react-dom"] == js["react"]
    assert react_18["react"].startswith("18.") and react_18["react-dom"] == react_18["react"]
    example = _json(EXAMPLE / "package.json")
    assert "asgi-adminstats" not in example["dependencies"]  # js/ci.sh installs the tarball
    assert 'from "asgi-adminstats/react"' in (EXAMPLE / "src" / "App.tsx").read_text()
