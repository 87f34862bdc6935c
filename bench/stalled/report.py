"""The Markdown report, and what was measured (commit, versions)."""

from __future__ import annotations

import subprocess
from typing import Any

from stalled.common import ROOT

__all__ = [
    "describe_measured",
    "report",
]


def _kernel(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    server, client = entry.get("server"), entry.get("client")
    tx = f"{server['tx'] / 1024:.0f}K" if server else "gone"
    rx = f"{client['rx'] / 1024:.0f}K" if client else "gone"
    return f"{tx}/{rx}"


def _drained(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return (
        f"{d['bytes'] / 2**20:.2f} MiB, {d['frames']} frames ({d['pings']} pings), close frame "
        f"{d['close_frame'] or 'none'}, {'EOF' if d['eof'] else 'no EOF'}"
    )


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| server | run | pings | sent (MiB) | sending ended | max send | user-space "
        "buffer | kernel srv tx/cli rx | RSS growth | close() | transport closing | app saw "
        "disconnect | server socket | client then reads: what it gets |",
        "|" + "---|" * 14,
    ]
    for r in results:
        if str(r.get("run")).startswith("component"):
            continue
        if "error" in r:
            lines.append(f"| {r['server']} | {r['run']} | ERROR {r['error']} |" + " |" * 11)
            continue
        wbuf = r["wbuf_at_block"]
        end = r["server_socket_at_end"]
        gone = (
            f"gone at +{r['server_socket_gone_s']} s"
            if r["server_socket_gone_s"] is not None
            else f"still {end['server']['state'] if end and end['server'] else '?'} "
            f"at +{r['observed_s']} s"
        )
        lines.append(
            f"| {r['server']} | {r['run']} | {r['pings']} | {r['sent']} ({r['sent_mib']}) | "
            f"{r['send_end']} at +{r['send_end_s']} s | {r['max_send_ms']} ms | "
            f"{'/'.join(f'{w / 1024:.0f}K' for w in wbuf) if wbuf else '-'} | "
            f"{_kernel(r['kernel_at_block'])} | {r['rss_growth_mib']} MiB | {r['close'] or '-'} | "
            f"{'-' if r['transport_closing_s'] is None else '+' + str(r['transport_closing_s']) + ' s'} | "  # noqa: E501
            f"{'-' if r['disconnect_s'] is None else str(r['disconnect_code']) + ' at +' + str(r['disconnect_s']) + ' s'} | "  # noqa: E501
            f"{gone} | {_drained(r.get('drained'))} |"
        )
    lines += [
        "",
        "| server | run | close requested in the outbox | stalled (both lanes) closed | "
        "stalled (stats only) closed | drained "
        "from stalled sockets afterwards | healthy stats/s mean (min), max gap | healthy "
        "notifications received / published, missing in between | RSS growth max (end) | "
        "server sockets at end (kernel srv tx / cli rx) |",
        "|" + "---|" * 10,
    ]
    for r in results:
        if not str(r.get("run")).startswith("component"):
            continue
        if "error" in r:
            lines.append(f"| {r['server']} | {r['run']} | ERROR {r['error']} |" + " |" * 7)
            continue
        drained = "; ".join(
            f"{name.removeprefix('stalled-')}: {_drained(r.get(f'{name}_drained'))}"
            for name in ("stalled-both", "stalled-stats")
        )
        sockets = ", ".join(
            f"{name.removeprefix('stalled-')}: "
            + (
                f"gone at +{r['gone_s'][name]} s"
                if r["gone_s"].get(name) is not None
                else _kernel(r["tcp_end"].get(name))
            )
            for name in r["tcp_end"]
        )
        closes = r["closes"]
        lines.append(
            f"| {r['server']} | {r['run']} | "
            f"{', '.join(f'{k}: {v}' for k, v in r['close_requested'].items()) or '-'} | "
            f"{closes.get('stalled-both', 'not closed')} | "
            f"{closes.get('stalled-stats', 'not closed')} | {drained} | "
            + (
                f"CLOSED {r['healthy_close_code']} by the server at "
                f"+{r['healthy_closed_by_server_s']} s; "
                if r["healthy_closed_by_server_s"] is not None
                else ""
            )
            + f"{r['healthy_stats_per_s_mean']} ({r['healthy_stats_per_s_min']}), "
            f"{r['healthy_max_gap_ms']} ms | {r['healthy_notifications']} / {r['published']}, "
            f"{r['healthy_notifications_missing']} missing | "
            f"{r['rss_growth_max_mib']} ({r['rss_growth_end_mib']}) MiB | {sockets} |"
        )
    return "\n".join(lines)


def describe_measured() -> str:
    """The component's commit (and whether asgi_adminstats/ differs from it), versions."""
    from importlib.metadata import version

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    changed = [
        line.split()[-1] for line in git("status", "--porcelain", "asgi_adminstats").splitlines()
    ]
    dirty = f" + uncommitted changes to {', '.join(changed)}" if changed else ""
    packages = ("uvicorn", "websockets", "wsproto", "hypercorn", "starlette", "uvloop")
    return f"asgi_adminstats at {git('rev-parse', '--short', 'HEAD')}{dirty}; " + ", ".join(
        f"{name} {version(name)}" for name in packages
    )
