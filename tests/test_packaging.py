"""The declared floors and the lowest-versions env agree: one fact, checked in two files.

pyproject.toml declares each dependency's floor; constraints/lowest.txt pins exactly those
floors for the py311-lowest tox env. A floor raised in one file only would go untested.
"""

from __future__ import annotations

import pathlib
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    floors: dict[str, Version] = {}
    for line in declared:
        requirement = Requirement(line)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lows, f"{line!r}: no floor (>=) declared"
        floors[canonicalize_name(requirement.name)] = max(lows)
    return floors


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints/lowest.txt: {raw!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_declared_floor_is_what_the_lowest_env_installs() -> None:
    floors, pins = _floors(), _pins()
    assert set(pins) == set(floors), "a dependency missing from one of the two files"
    # A floor "2.0" is pinned as "2.0.0": compare versions, not strings.
    assert {n: v for n, v in pins.items() if floors[n] != v} == {}
