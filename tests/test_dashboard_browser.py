"""The dashboard and the React hook page in a real browser, against the real sample app.

``python -m sample_app --dev`` runs as a subprocess on a SQLite file; headless Chromium
(the system one: Playwright's own browser downloads are never used) signs in with the dev
login, bans a player, lives through a server restart, and finds an action written to the
database while the server was down exactly once in the feed, then on the hook page.

Needs the ``playwright`` package and Chromium at ``/usr/bin/chromium`` (or
``ADMINSTATS_CHROMIUM``); skipped without them, which CI turns into a failure
(``ADMINSTATS_REQUIRE_SERVICES=1``). ``ADMINSTATS_DASHBOARD_SCREENSHOT=docs/dashboard.png``
writes the 1920x1080 screenshot of the run there (the README's picture); otherwise it
only goes to the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx2
import pytest

# Its own engines (memory bus, SQLite) whatever ADMINSTATS_TEST_BACKEND says: the tox
# redis/postgres envs leave it to the memory envs instead of running it again.
pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ADMINSTATS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Fixed, so the token from the dev login still verifies after the restart.
SECRET = "browser-test-secret-" + "b" * 32
VIEWPORT = {"width": 1920, "height": 1080}
TEST_BUDGET_S = 55


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _playwright_or_skip() -> Any:
    """``playwright.async_api`` or a skip that says what is missing (a failure in CI)."""
    try:
        import playwright.async_api as api
    except ImportError:
        pytest.skip(
            "browser test: the playwright package is not installed (pip install playwright)"
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"browser test: no Chromium at {CHROMIUM} "
            "(apt-get install chromium, or point ADMINSTATS_CHROMIUM at one)"
        )
    return api


@contextlib.asynccontextmanager
async def _chromium_page(api: Any, page_errors: list[str]) -> AsyncIterator[Any]:
    """A page in headless Chromium (5 s default waits) whose uncaught errors go to
    ``page_errors``; the whole browser run is bounded by TEST_BUDGET_S."""
    async with asyncio.timeout(TEST_BUDGET_S), api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=20_000
        )
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(5_000)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            yield page
        finally:
            await browser.close()


class SampleServer:
    """``python -m sample_app --dev`` on a fixed port and database; stop and start again."""

    def __init__(
        self, port: int, database: Path, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._log_path = log
        self._log: IO[bytes] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
        self._env.update(
            DATABASE_URL=f"sqlite:///{database}",
            ADMINSTATS_STATS_INTERVAL="1",
            ADMINSTATS_JWT_SECRET=SECRET,
        )
        self._env.update(env or {})

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    async def start(self, timeout: float = 20) -> None:
        assert self._proc is None, "already running"
        self._log = self._log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sample_app",
            "--dev",
            "--port",
            str(self.port),
            cwd=ROOT,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        async with httpx2.AsyncClient(base_url=self.base, timeout=2) as http:
            while time.monotonic() < deadline:
                if self._proc.returncode is not None:
                    raise AssertionError(f"the sample app exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx2.TransportError):
                    if (await http.get("/admin/api/config")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(
            f"the sample app did not answer within {timeout} s:\n{self.log_tail()}"
        )

    async def stop(self, timeout: float = 10) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    proc.kill()
                    await asyncio.wait_for(proc.wait(), 5)
                    message = f"no exit {timeout} s after SIGTERM:\n{self.log_tail()}"
                    raise AssertionError(message) from None
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _record_offline_action(database: Path) -> str:
    """An audit row written straight to SQLite (no push: nobody is listening)."""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as conn:
        cursor = conn.execute(
            "INSERT INTO audit_log (action, admin, target_type, target_id, details, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("RESET_PASSWORD", "ops.offline", "USER", "17", "while the server was down", created),
        )
        conn.commit()
        return str(cursor.lastrowid)


# Stamps, in the page's own clock, when the next new BAN_PLAYER row reaches the top of
# the feed and when the live channel confirms it (data-live: the WebSocket push arrived;
# the page also shows the API's answer at once). Polling from Python would add its own lag.
_BAN_PROBE = """(before) => {
  const list = document.getElementById("recent-actions");
  const probe = { clickedAt: null, shownAt: null, liveAt: null, id: null, source: null };
  window.__banProbe = probe;
  document.getElementById("ban-button").addEventListener(
    "click", () => { probe.clickedAt = performance.now(); }, { capture: true, once: true });
  const observer = new MutationObserver(() => {
    const top = list.firstElementChild;
    if (probe.clickedAt === null || !top || top.dataset.actionId === before) return;
    if (top.dataset.action !== "BAN_PLAYER") return;
    probe.id = top.dataset.actionId;
    probe.source = probe.source ?? top.dataset.source;
    if (probe.shownAt === null) probe.shownAt = performance.now();
    if (top.dataset.live === "true") {
      probe.liveAt = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(list, { childList: true, subtree: true, attributes: true });
}"""


# The samples drawn in a chart's line(s): "M x,y L x,y ..." per segment.
_CHART_POINTS = """(id) => [...document.querySelectorAll(`#${id} svg path[fill="none"]`)]
  .reduce((n, path) => n + path.getAttribute("d").split("L").length, 0)"""
# Seconds the restarted server runs before the dashboard is opened again, and the chart
# samples its history must bring at once (at 1 s ticks, more than live ticks could).
_HISTORY_AGE_S = 7.0
_HISTORY_POINTS = 5


async def test_dashboard_and_hook_page_through_a_server_restart(tmp_path: Path) -> None:
    api = _playwright_or_skip()
    expect = api.expect
    database = tmp_path / "game.db"
    server = SampleServer(_free_port(), database, tmp_path / "server.log")
    timings: dict[str, float] = {}
    first_path = None
    page_errors: list[str] = []
    csp_violations: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            csp_violations.append(message.text)

    # For the README picture, let the charts gather some history around the restart.
    screenshot_target = os.environ.get("ADMINSTATS_DASHBOARD_SCREENSHOT")
    linger = 12.0 if screenshot_target else 0.0

    started = time.monotonic()
    await server.start()
    try:
        async with _chromium_page(api, page_errors) as page:
            page.on("console", on_console)
            # The frame types the dashboard's sockets receive (it asks for deltas).
            frame_types: list[str] = []
            requests: list[dict[str, Any]] = []  # what the page sent, but its auth
            second_history = asyncio.Event()  # the reply to the request after a reconnect

            def on_socket(socket: Any) -> None:  # a playwright WebSocket
                def on_frame(payload: str | bytes) -> None:
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        frame_types.append(json.loads(payload)["type"])
                        if frame_types.count("history") == 2:
                            second_history.set()

                def on_sent(payload: str | bytes) -> None:
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        if (message := json.loads(payload))["type"] != "auth":
                            requests.append(message)

                socket.on("framereceived", on_frame)
                socket.on("framesent", on_sent)

            page.on("websocket", on_socket)
            status = page.get_by_test_id("status")
            status_text = page.get_by_test_id("status-text")
            feed = page.locator("#recent-actions > li")

            # Sign in with the dev login: Live, and the numbers move on every tick.
            await page.goto(f"{server.base}/admin")
            await page.get_by_test_id("dev-login").click()
            await expect(status).to_have_attribute("data-state", "live")
            await expect(status_text).to_have_text("Live")
            uptime = page.get_by_test_id("uptime")
            await expect(uptime).not_to_have_text("–")
            first_uptime = await uptime.inner_text()
            # Ticks arrive (1 s apart; the bound leaves room for a loaded CI machine).
            await expect(uptime).not_to_have_text(first_uptime, timeout=15_000)
            await expect(page.get_by_test_id("conn-id")).not_to_have_text("–")
            # This dashboard counts itself, in the singular.
            await expect(page.get_by_test_id("admin-connections")).to_have_text("1")
            await expect(page.get_by_test_id("admin-connections-unit")).to_have_text(
                re.compile(r"^\s*connection$")
            )
            # The first snapshot in full, the ticks after it as merge patches.
            assert "stats_update" in frame_types and "stats_delta" in frame_types, frame_types
            await expect(page.locator("#chart-users svg path").first).to_be_attached()

            # Ban: the action tops the feed at once, confirmed by the push within 1 s.
            top_before = await feed.first.get_attribute("data-action-id")
            await page.evaluate(_BAN_PROBE, top_before)
            await page.get_by_test_id("player-id").fill("7")
            await page.get_by_test_id("ban-button").click()
            await page.wait_for_function(
                "() => window.__banProbe.liveAt !== null", timeout=3_000, polling="raf"
            )
            probe = await page.evaluate("window.__banProbe")
            timings["ban -> top of feed"] = probe["shownAt"] - probe["clickedAt"]
            timings["ban -> push confirmed"] = probe["liveAt"] - probe["clickedAt"]
            ban_id = probe["id"]
            first_path = probe["source"]  # "push": the WebSocket beat the HTTP answer
            await expect(page.get_by_test_id("moderate-result")).to_contain_text(f"#{ban_id}")
            await expect(feed.first).to_have_attribute("data-action-id", ban_id)
            ban_item = page.locator(f'#recent-actions > li[data-action-id="{ban_id}"]')
            await expect(ban_item).to_have_count(1)

            await asyncio.sleep(linger)

            # The server goes away: the client notices at once and keeps retrying.
            t0 = time.monotonic()
            await server.stop()
            await expect(status).to_have_attribute("data-state", "reconnecting", timeout=5_000)
            await expect(status_text).to_have_text("Reconnecting…")
            timings["SIGTERM -> Reconnecting…"] = (time.monotonic() - t0) * 1000

            # Meanwhile an action is written straight to the database.
            offline_id = _record_offline_action(database)

            # Back on the same port and database: Live again, the missed action once.
            t0 = time.monotonic()
            await server.start()
            restarted = time.monotonic()
            timings["restart -> server answering"] = (time.monotonic() - t0) * 1000
            await expect(status).to_have_attribute("data-state", "live", timeout=15_000)
            await expect(status_text).to_have_text("Live")
            timings["restart -> Live"] = (time.monotonic() - t0) * 1000
            # The charts ask what they missed since the last snapshot before the drop
            # (its history goes into the break), not the whole hour again.
            await asyncio.wait_for(second_history.wait(), 10)
            asked = [r for r in requests if r["type"] == "history"]
            assert "since" not in asked[0], asked  # the first connection: the hour
            assert len(asked) >= 2 and all(isinstance(r.get("since"), int) for r in asked[1:])
            offline_item = page.locator(f'#recent-actions > li[data-action-id="{offline_id}"]')
            await expect(offline_item).to_have_count(1)
            await expect(feed.first).to_have_attribute("data-action-id", offline_id)
            await expect(feed.first).to_have_attribute("data-action", "RESET_PASSWORD")
            # The target's type, and the audit id apart from it (not "user #<id>").
            await expect(offline_item.locator(".action-target")).to_have_text("user")
            await expect(offline_item.locator(".action-id")).to_have_text(f"audit #{offline_id}")
            await expect(feed.first).to_have_class(re.compile(r"\bis-new\b"))
            assert int(await page.get_by_test_id("conn-reconnects").inner_text()) >= 1
            # Replay and snapshots both carry it: still once a few ticks later.
            settled = await uptime.inner_text()
            await expect(uptime).not_to_have_text(settled, timeout=15_000)
            await expect(offline_item).to_have_count(1)
            assert await ban_item.count() == 1

            await asyncio.sleep(linger / 2)  # less than the 8 s highlight of new rows
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot))
            if screenshot_target:
                shutil.copyfile(shot, ROOT / screenshot_target)

            # The React hook page, same tab (the token is in sessionStorage): Live, and
            # the same newest action, once.
            await page.goto(f"{server.base}/admin/hook")
            await expect(status).to_have_attribute("data-state", "live")
            await expect(status_text).to_have_text("Live")
            await expect(page.get_by_test_id("dev-banner")).to_be_visible()  # as /admin
            await expect(feed.first).to_have_attribute("data-action-id", offline_id)
            await expect(
                page.locator(f'#recent-actions > li[data-action-id="{offline_id}"]')
            ).to_have_count(1)
            await expect(page.get_by_test_id("online-users")).to_have_text(re.compile(r"^\d"))

            # The dashboard again: its charts start with the server's history (every
            # snapshot since the restart), not with what the page has seen itself.
            await asyncio.sleep(max(0.0, restarted + _HISTORY_AGE_S - time.monotonic()))
            seen_before = len(frame_types)
            await page.goto(f"{server.base}/admin")
            await expect(status).to_have_attribute("data-state", "live")
            await page.wait_for_function(
                f"() => ({_CHART_POINTS})('chart-users') >= {_HISTORY_POINTS}", timeout=10_000
            )
            since_goto = frame_types[seen_before:]
            live = [t for t in since_goto if t in ("stats_update", "stats_delta")]
            assert "history" in since_goto, since_goto
            assert len(live) < _HISTORY_POINTS, f"filled by live ticks, not history: {live}"
    finally:
        await server.stop()

    timings["total"] = (time.monotonic() - started) * 1000
    print()  # shown with -s / -rP
    for name, ms in timings.items():
        print(f"browser timing: {name}: {ms:.0f} ms")
    print(f"browser: the ban reached the feed first by {first_path!r}")
    assert not page_errors, page_errors
    assert not csp_violations, csp_violations
    assert timings["ban -> top of feed"] < 1000, timings
    assert timings["ban -> push confirmed"] < 1000, timings


async def test_a_refused_origin_says_what_to_check(tmp_path: Path) -> None:
    """A page whose origin is not allowed gets no endless "Reconnecting… 1006": both
    pages say the server refused it and what to check, and the client backs off."""
    api = _playwright_or_skip()
    expect = api.expect
    port = _free_port()
    # Only http://localhost:<port> may connect: the pages at 127.0.0.1 are refused (403).
    allowed = {"ADMINSTATS_ALLOWED_ORIGINS": f"http://localhost:{port}"}
    server = SampleServer(port, tmp_path / "game.db", tmp_path / "server.log", env=allowed)
    page_origin = server.base
    page_errors: list[str] = []
    sockets: list[str] = []
    await server.start()
    try:
        async with _chromium_page(api, page_errors) as page:
            page.on("websocket", lambda socket: sockets.append(socket.url))
            status = page.get_by_test_id("status")
            refused = page.get_by_test_id("refused")

            await page.goto(f"{server.base}/admin")
            await expect(page.get_by_test_id("dev-banner")).to_be_visible()
            await expect(refused).to_be_hidden()
            await page.get_by_test_id("dev-login").click()
            await expect(refused).to_be_visible()
            await expect(refused).to_have_attribute("data-reason", "origin")
            await expect(refused).to_contain_text(f"origin ({page_origin})")
            await expect(refused).to_contain_text("ADMINSTATS_ALLOWED_ORIGINS")
            await expect(status).to_have_attribute("data-state", "refused")
            await expect(page.get_by_test_id("status-text")).to_have_text("Refused")
            # Backing off, not hammering: a few attempts in 3 s, not one per event loop.
            before = len(sockets)
            await asyncio.sleep(3)
            assert len(sockets) - before <= 5, sockets
            await expect(refused).to_be_visible()  # still refused, still saying so

            # The hook page says the same.
            await page.goto(f"{server.base}/admin/hook")
            await expect(page.get_by_test_id("dev-banner")).to_be_visible()
            await expect(refused).to_have_attribute("data-reason", "origin", timeout=10_000)
            await expect(refused).to_contain_text(f"origin ({page_origin})")
            await expect(status).to_have_attribute("data-state", "refused")
    finally:
        await server.stop()
    assert not page_errors, page_errors
