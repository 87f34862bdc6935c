"""The results of one bench/fanout.py run: JSON and Markdown, one section per scenario.

JSON: ``machine`` and ``config``; the fan-out table's ``targets``, ``summary`` and
``runs`` at the top level, as before (empty when it did not run); every other scenario
under ``scenarios.<name>`` with its own ``summary``, ``targets`` and ``runs``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import SCENARIOS, Section
from servers import SNAPSHOT_BYTES

PACKAGE = Path(__file__).resolve().parent.parent / "asgi_adminstats"
TABLE = "fanout"  # the scenario whose section is the top level, as before


def build(
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    *,
    pinned: bool,
    seconds: float,
    sections: dict[str, Section],
) -> dict[str, Any]:
    versions = _versions("uvicorn", "websockets", "starlette", "broadcaster", "uvloop", "httptools")
    servers = {r["kind"]: r["server"] for r in rows if "server" in r}
    digests = sorted({r["package_digest"] for r in rows if r["kind"] == "adminstats"})
    table = sections.get(TABLE)
    result: dict[str, Any] = {
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            **versions,
            "pinned": "server CPU 0, loadgen CPU 1" if pinned else "not pinned",
            "loadgen_loop": "uvloop",
            # Measured code: git state at the end, source digests seen by adminstats runs.
            "asgi_adminstats": {**package_state(), "digests": digests},
            "servers": {k: {"loop": v.get("loop"), "ws": v.get("ws")} for k, v in servers.items()},
        },
        "config": {
            "command": " ".join(["python", "bench/fanout.py", *sys.argv[1:]]),
            "scenarios": args.scenario,
            "n": sorted({r["n"] for r in rows}),
            "repetitions": args.reps,
            "publishes": args.publishes,
            "snapshot_bytes": SNAPSHOT_BYTES,
            "deflate_offered": args.deflate,
            "uvicorn_ws": args.ws,
            "server_deflate": not args.no_deflate,
            "smoke": args.smoke,
            "duration_s": round(seconds, 1),
            "note": args.note,
        },
        "targets": table.targets if table else [],
        "summary": table.summary if table else [],
        "runs": [r for r in rows if r["scenario"] == TABLE],
        "scenarios": {},
    }
    for name, section in sections.items():
        if name != TABLE:
            result["scenarios"][name] = {
                "summary": section.summary,
                "targets": section.targets,
                "runs": [r for r in rows if r["scenario"] == name],
            }
    return result


def markdown(result: dict[str, Any], sections: dict[str, Section]) -> str:
    m, c = result["machine"], result["config"]
    p = m["asgi_adminstats"]
    lines = [
        "# Fan-out benchmark",
        "",
        f"`{c['command']}` ({c['duration_s']} s{', smoke' if c['smoke'] else ''}). "
        f"{m['cpu']} x{m['cpus']}, Python {m['python']}, uvicorn {m['uvicorn']}, websockets "
        f"{m['websockets']}, starlette {m['starlette']}, broadcaster {m['broadcaster']}; "
        f"{m['pinned']}. Servers: "
        + ", ".join(f"{k} {v['loop']} + {v['ws']}" for k, v in m["servers"].items())
        + ".",
        "",
        f"asgi_adminstats: commit {p['commit']}, {p['uncommitted_files']} uncommitted file(s) "
        f"at the end, source digest(s) {', '.join(p['digests']) or '-'}"
        + (
            " (**changed during the run**: compare rows by `package_digest`)"
            if len(p["digests"]) > 1
            else ""
        )
        + ".",
    ]
    for name, section in sections.items():
        title = SCENARIOS[name].run.__doc__ or name
        lines += ["", f"## `{name}`: {title.strip().splitlines()[0]}", ""]
        if name == TABLE:
            lines += [
                f"{c['publishes']} publishes of a {c['snapshot_bytes']}-byte snapshot per run, "
                f"medians of {c['repetitions']} repetition(s).",
                "",
            ]
        lines += section.markdown
    if c.get("note"):
        lines += ["", f"Note: {c['note']}"]
    return "\n".join(lines) + "\n"


def package_digest() -> str:
    """A hash of asgi_adminstats' sources as a server started now would import them."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def package_state() -> dict[str, Any]:
    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", PACKAGE.name).splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_files": len(changed)}


def measured_on() -> str:
    """The machine and the measured code in one line, for results written outside fanout.py."""
    found = _versions("uvicorn", "websockets", "starlette")
    versions = ", ".join(f"{name} {version}" for name, version in found.items())
    state = package_state()
    return (
        f"{_cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, {versions}; "
        f"asgi_adminstats commit {state['commit']}, {state['uncommitted_files']} uncommitted "
        f"file(s), source digest {package_digest()}."
    )


def _versions(*packages: str) -> dict[str, str]:
    return {package: importlib.metadata.version(package) for package in packages}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"
