"""What a run found: the bare and component summaries, and the component's checks."""

from __future__ import annotations

import itertools
from typing import Any

from stalled.common import Run, now

__all__ = [
    "close_bound",
    "closed_line",
    "component_checks",
    "summarise_bare",
    "summarise_component",
]


def _mib(n: float) -> float:
    return round(n / 2**20, 2)


def _gone_at(run: Run, name: str, after: float, until: float) -> float | None:
    """When the server-side socket of ``name`` left /proc/net/tcp (s after ``after``),
    if it did before ``until``."""
    seen = False
    for snap in run.tcp:
        if snap["t"] > until:
            break
        entry = snap.get(name)
        if entry is None:
            continue
        if entry["server"] is not None:
            seen = True
        elif seen and snap["t"] >= after:
            return round(float(snap["t"]) - after, 2)
    return None


def _tcp_at(run: Run, name: str, moment: float) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for snap in run.tcp:
        if snap["t"] <= moment and name in snap:
            best = snap[name]
    return best


def summarise_bare(run: Run) -> None:
    res = run.result
    samples = run.samples()
    accepted = run.first("accepted")
    send_end = run.first("send_end")
    close_end = run.first("close_end")
    disconnect = run.first("disconnect")
    app_return = run.first("app_return")
    first_slow = run.first("first_slow")
    send_error = run.first("send_error")
    base = samples[0]["rss"] if samples else 0
    t0 = accepted["t"] if accepted else res.get("connected_at", 0.0)
    before_drain = [s for s in samples if s["t"] <= res["ended_at"]]
    end_send = send_end["t"] if send_end else res["ended_at"]
    plateau = [s for s in samples if s["t"] <= end_send + 1.0] or samples
    last = before_drain[-1] if before_drain else {}
    tcp_block = _tcp_at(run, "stalled", end_send)
    tcp_end = _tcp_at(run, "stalled", res["ended_at"])
    res.update(
        server=run.server,
        run=run.kind,
        pings=run.spec["pings"] or "default",
        sent=send_end["sent"] if send_end else last.get("sent"),
        sent_mib=_mib(send_end["sent_bytes"] if send_end else last.get("sent_bytes", 0)),
        send_end=send_end["reason"] if send_end else "app never finished sending",
        send_end_s=None if not send_end else round(send_end["t"] - t0, 2),
        first_slow_n=first_slow["n"] if first_slow else None,
        max_send_ms=round(1000 * max((s["max_send"] for s in samples), default=0.0), 1),
        blocked=bool(
            (send_end and send_end["reason"] != "message limit")
            or any(s["slow_sends"] for s in samples)
        ),
        send_error=send_error["error"] if send_error else None,
        wbuf_at_block=[s["wbuf"] for s in plateau][-1] if plateau else None,
        kernel_at_block=tcp_block,
        rss_growth_mib=_mib(max((s["rss"] for s in plateau), default=base) - base),
        rss_growth_end_mib=_mib(last.get("rss", base) - base),
        close=None if not close_end else f"{close_end['outcome']} after {close_end['took']:.1f} s",
        disconnect_s=None if not disconnect else round(disconnect["t"] - t0, 2),
        disconnect_code=None if not disconnect else disconnect.get("code"),
        app_return_s=None if not app_return else round(app_return["t"] - t0, 2),
        transport_closing_s=next(
            (round(x["t"] - t0, 1) for x in samples if any(x["closing"])), None
        ),
        server_socket_gone_s=_gone_at(run, "stalled", t0, res["ended_at"]),
        drained=res.get("drained"),
        gone_after_drain_s=None
        if "drained" not in res
        else _gone_at(run, "stalled", res["ended_at"], now() + 1),
        server_socket_at_end=tcp_end,
        transports_at_end=list(zip(last.get("wbuf", []), last.get("closing", []), strict=False)),
        observed_s=round(res["ended_at"] - t0, 1),
        rss_series_mib=[_mib(s["rss"] - base) for s in samples],
    )


# An exception out of the ASGI app as uvicorn and hypercorn log it, one asyncio never
# saw retrieved, or any traceback through the package. Not any traceback: hypercorn's
# own TCPServer._close logs ETIMEDOUT when TCP_USER_TIMEOUT resets a connection.
_CRASH_MARKS = (
    "Exception in ASGI application",
    "Error in ASGI Framework",
    "exception was never retrieved",
    "/asgi_adminstats/",
)


# The session's logger.error lines: "session X failed", "session X: a write failed".
_FAILED_LOGS = " failed"


def close_bound(spec: dict[str, Any]) -> float:
    """By when (s after connect) a stalled session must have ended, generously: the
    heartbeat's ping and pong wait, the bounded close, and 5 s for a loaded machine."""
    return float(spec["heartbeat_interval"] + 2 * spec["heartbeat_timeout"] + 5)


def closed_line(run: Run, name: str) -> dict[str, Any] | None:
    """The session's "connection closed" log event for client ``name``, if any."""
    return next(
        (
            e
            for e in run.events
            if e["ev"] == "log" and "connection closed" in e["msg"] and f"sub={name} " in e["msg"]
        ),
        None,
    )


def component_checks(run: Run, res: dict[str, Any]) -> list[dict[str, Any]]:
    """Behaviour, not speed: what ``--smoke`` (a CI guard) fails on.

    - each stalled client's session ends with 4008 or 4408 within ``close_bound`` (with
      ``TCP_USER_TIMEOUT`` the kernel's reset may end it first: "client" counts too);
    - the close performed is the first one asked for (a 4008 on overflow is not left
      to the heartbeat's 4408);
    - no exception came out of the app (the server's log; e.g. an AssertionError in a
      close) and the session logged no failure;
    - the healthy client was not closed, got the last notification published and
      missed none in between.
    """
    bound = close_bound(run.spec)
    codes = {"4008", "4408"} | ({"client"} if run.spec["user_timeout_ms"] else set())
    checks: list[dict[str, Any]] = []
    for name in ("stalled-both", "stalled-stats"):
        code, after = res["close_codes"].get(name), res["closed_s"].get(name)
        checks.append(
            {
                "check": f"{name} closed ({'/'.join(sorted(codes))}) within {bound:g} s",
                "ok": code in codes and after is not None and after <= bound,
                "got": "never logged" if code is None else f"{code} at +{after} s",
            }
        )
    for name in ("stalled-both", "stalled-stats"):
        asked, code = res["first_requested"].get(name), res["close_codes"].get(name)
        checks.append(
            {
                "check": f"{name}: the close asked for first is the one performed",
                # No request seen (a hook that no longer fits the package): nothing to check.
                "ok": asked is None or code == asked,
                "got": "no request seen" if asked is None else f"asked {asked}, performed {code}",
            }
        )
    crashes = [line for line in run.stderr if any(mark in line for mark in _CRASH_MARKS)]
    crashes += [
        e["msg"] for e in run.events if e["ev"] == "log" and e["msg"].endswith(_FAILED_LOGS)
    ]
    checks.append(
        {
            "check": "no exception from the app (server log, session log)",
            "ok": not crashes,
            "got": "; ".join(crashes[:3]) or "none",
        }
    )
    last_id = max(res["_ids"]) if res["_ids"] else None
    published, missing = res["published"], res["healthy_notifications_missing"]
    closed = res["healthy_closed_by_server_s"] is not None
    checks.append(
        {
            "check": "healthy kept receiving: not closed, got the last notification, 0 missing",
            "ok": not closed and res["publish_ended"] and last_id == published - 1 and missing == 0,
            "got": f"closed by server: {res['healthy_close_code'] if closed else 'no'}, "
            f"last id {last_id} of {published} published, {missing} missing",
        }
    )
    return checks


def summarise_component(run: Run, stamps: dict[str, list[float]], info: dict[str, Any]) -> None:
    res = run.result
    samples = run.samples()
    base = samples[0]["rss"] if samples else 0
    t0 = res["connected_at"]
    publish_end = run.first("publish_end")
    logs = [e["msg"] for e in run.events if e["ev"] == "log"]
    closes: dict[str, str] = {}
    close_codes: dict[str, str] = {}
    closed_s: dict[str, float] = {}
    for name in ("stalled-both", "stalled-stats", "healthy"):
        event = closed_line(run, name)
        if event is not None:
            fields = dict(part.split("=", 1) for part in event["msg"].split() if "=" in part)
            closes[name] = f"{fields.get('code')} after {fields.get('duration')}"
            close_codes[name] = str(fields.get("code"))
            closed_s[name] = round(event["t"] - t0, 2)
    stats_times = [t for t in stamps.get("stats", []) if t >= t0]
    end = publish_end["t"] if publish_end else res["ended_at"]
    window = [t for t in stats_times if t <= end]
    per_second: list[int] = []
    if window:
        start = window[0]
        per_second = [
            sum(1 for t in window if start + i <= t < start + i + 1)
            for i in range(int(window[-1] - start))
        ]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    published = publish_end["published"] if publish_end else samples[-1].get("published", 0)
    before_drain = [s for s in samples if s["t"] <= res["ended_at"]]
    last = before_drain[-1] if before_drain else {}
    ids: list[int] = info.get("ids", [])
    requested: dict[str, str] = {}
    first_requested: dict[str, str] = {}
    for event in run.events:
        if event["ev"] == "close_requested" and event["sub"] not in requested:
            requested[event["sub"]] = f"{event['code']} at +{event['t'] - t0:.1f} s"
            first_requested[event["sub"]] = str(event["code"])
    res.update(
        server=run.server,
        run=run.kind,
        close_requested=requested,
        first_requested=first_requested,
        app_errors=[line for line in run.stderr if "Error" in line or "Exception" in line][-6:],
        settings=(
            f"heartbeat {run.spec['heartbeat_interval']}/{run.spec['heartbeat_timeout']} s, "
            f"notification_queue {run.spec['notification_queue']}"
        ),
        published=published,
        publish_rate=round(published / publish_end["took"], 1) if publish_end else None,
        closes=closes,
        close_codes=close_codes,
        closed_s=closed_s,
        publish_ended=publish_end is not None,
        healthy_stats_per_s_mean=round(sum(per_second) / len(per_second), 1)
        if per_second
        else None,
        healthy_stats_per_s_min=min(per_second) if per_second else None,
        healthy_max_gap_ms=round(1000 * max(gaps), 1) if gaps else None,
        healthy_notifications=len(stamps.get("audit_action", [])),
        healthy_notifications_missing=(max(ids) - min(ids) + 1 - len(set(ids))) if ids else None,
        healthy_close_code=info.get("close_code"),
        healthy_closed_by_server_s=round(info["closed_by_server_at"] - t0, 1)
        if "closed_by_server_at" in info
        else None,
        rss_growth_max_mib=_mib(max((s["rss"] for s in samples), default=base) - base),
        rss_growth_end_mib=_mib(last.get("rss", base) - base),
        rss_series_mib=[_mib(s["rss"] - base) for s in samples],
        members_end=last.get("members"),
        sockets_end=last.get("sockets"),
        transports_end=list(zip(last.get("wbuf", []), last.get("closing", []), strict=False)),
        tcp_end={name: _tcp_at(run, name, res["ended_at"]) for name in run.watched},
        gone_s={name: _gone_at(run, name, t0, res["ended_at"]) for name in run.watched},
        log_tail=logs[-8:],
        _ids=ids,
    )
    res["checks"] = component_checks(run, res)
    del res["_ids"]
