"""Pool the paired scenario's per-run ratios across its result files.

Each cell of a paired result (loop, N, deflate) holds one adminstats / seed ratio per
run; a cell's own interval is wide (3 runs), so this pools every run of every file
given: the geometric mean of the run ratios and its 95 % Student t interval (runs are
independent server starts; the pairs inside a run are not resampled here). Two
ratios: CPU per delivery (goal 1), and fan-out completion p99 (goal 1's "p99 no
worse"; a run's p99 of 60 publishes is its next-to-worst, so single runs spread wide).

    python bench/pool_ratios.py bench/results/paired-uvloop.json bench/results/paired-asyncio.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from harness import pct

# Two-sided 95 % Student t quantiles for 1 to 30 degrees of freedom (beyond: the normal's).
_T95: tuple[float, ...] = (
    *(12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228),
    *(2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086),
    *(2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042),
)


def run_ratios(path: Path) -> list[tuple[str, float]]:
    """(cell, ratio) for every run of every cell in one paired result file."""
    summary = json.loads(path.read_text())["scenarios"]["paired"]["summary"]
    return [
        (f"{path.stem} N={row['n']} deflate={row['deflate']}", ratio)
        for row in summary
        for ratio in row["rep_ratios"]
    ]


def run_p99_ratios(path: Path) -> list[tuple[str, float]]:
    """(cell, completion p99 ratio) for every run of every cell in one paired result."""
    rows = []
    for run in json.loads(path.read_text())["scenarios"]["paired"]["runs"]:
        a, b = pct(run["completion_ms"]["a"], 0.99), pct(run["completion_ms"]["b"], 0.99)
        if a is not None and b is not None:  # None: a publish some client never got
            rows.append((f"{path.stem} N={run['n']} deflate={run['deflate']}", a / b))
    return rows


def pooled(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean and its 95 % interval."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    df = len(logs) - 1
    t = _T95[df - 1] if df <= len(_T95) else 1.96
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="paired-*.json result files")
    parser.add_argument("--quiet", action="store_true", help="only the pooled lines")
    args = parser.parse_args()
    for what, read in (("CPU per delivery", run_ratios), ("completion p99", run_p99_ratios)):
        rows = [row for path in args.files for row in read(path)]
        if len(rows) < 2:
            parser.error("at least two runs are needed for an interval")
        if not args.quiet:
            for name, ratio in rows:
                print(f"{what}, {name}: {ratio:.3f}")
        mean, low, high = pooled([ratio for _, ratio in rows])
        print(f"{what}, pooled over {len(rows)} runs: {mean:.3f} [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
