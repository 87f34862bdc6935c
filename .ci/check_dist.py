"""Check what the built distributions in dist/ carry (run by .ci/run after the build).

The wheel: the license under .dist-info/licenses, the browser client files, py.typed, and
no tests. The sdist: no tests either (the suite lives in the repository).
"""

import sys
import tarfile
import zipfile
from pathlib import Path

__all__ = ["main"]

WHEEL_MUST_HAVE = (
    "asgi_adminstats/py.typed",
    "asgi_adminstats/static/adminstats.js",
    "asgi_adminstats/static/use-admin-websocket.js",
)
TEST_DIRS = ("tests/", "bench/", "support/", "sample_app/")


def main(dist: Path = Path("dist")) -> int:
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = archive.namelist()
    with tarfile.open(sdist) as archive:
        # Member names start with "<name>-<version>/".
        in_sdist = [name.partition("/")[2] for name in archive.getnames()]
    problems = [f"{wheel.name}: no {name}" for name in WHEEL_MUST_HAVE if name not in in_wheel]
    if not any(".dist-info/licenses/LICENSE" in name for name in in_wheel):
        problems.append(f"{wheel.name}: no .dist-info/licenses/LICENSE")
    problems += [
        f"{archive}: {name}"
        for archive, names in ((wheel.name, in_wheel), (sdist.name, in_sdist))
        for name in names
        if name.startswith(TEST_DIRS)
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
