// useAdminWebSocket on real React (18 and 19, react-dom in jsdom) against a real server:
// `node --test test/` in js/ after `node build.mjs` (js/ci.sh runs both).
//
// The server is support/js_server.py (AdminStats under uvicorn, a SQLite file with the
// demo rows, a snapshot every 0.5 s); its Python is $ADMINSTATS_PYTHON, else the
// repository's .venv. React 19 is js/node_modules' (devDependencies); React 18 lives in
// test/react-18/node_modules, because react-dom 18 must resolve `react` to React 18.
// Run with --test-force-exit: a hook that failed to close its client would keep
// reconnecting, and the process alive, after the tests.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { JSDOM } from "jsdom";

const JS_DIR = fileURLToPath(new URL("..", import.meta.url));
const ROOT = join(JS_DIR, "..");
const PAGE_ORIGIN = "http://127.0.0.1:5173"; // the jsdom page; the server allows it
const TIMEOUT_MS = 10_000;

// A browser-like global scope before react-dom loads (it looks for `window` at import).
const dom = new JSDOM('<!doctype html><html><body><div id="root"></div></body></html>', {
  url: `${PAGE_ORIGIN}/dashboard`,
  pretendToBeVisual: true, // requestAnimationFrame, which the client renders on
});
for (const name of ["window", "document", "navigator", "HTMLElement", "HTMLIFrameElement", "Node", "Event"]) {
  if (!(name in globalThis)) globalThis[name] = name === "window" ? dom.window : dom.window[name];
}
globalThis.requestAnimationFrame = dom.window.requestAnimationFrame.bind(dom.window);
globalThis.cancelAnimationFrame = dom.window.cancelAnimationFrame.bind(dom.window);

/** The page's WebSocket (jsdom's: it sends the page's Origin), recording each socket. */
function trackingWebSocket(page = dom.window) {
  const sockets = [];
  class PageWebSocket extends page.WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  return { PageWebSocket, sockets };
}

async function waitFor(what, check, timeout = TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`${what}: not within ${timeout} ms (last: ${last?.stack ?? JSON.stringify(last)})`);
}

// --- the server ---------------------------------------------------------------------

let server = null;

async function startServer() {
  const python =
    process.env.ADMINSTATS_PYTHON ?? [join(ROOT, ".venv", "bin", "python")].find(existsSync) ?? "python3";
  const dir = mkdtempSync(join(tmpdir(), "adminstats-react-"));
  const proc = spawn(python, ["-m", "support.js_server", "--origin", PAGE_ORIGIN, "--dir", dir], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (chunk) => (stderr += chunk));
  const ready = await new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`no server within 30 s:\n${stderr}`)), 30_000);
    proc.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (stdout.includes("\n")) {
        clearTimeout(timer);
        resolve(JSON.parse(stdout.split("\n")[0]));
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}):\n${stderr}`));
    });
  });
  return { ...ready, proc, dir, stderr: () => stderr };
}

async function health() {
  const response = await fetch(`${server.http}/admin/ws/health`);
  return response.json();
}

before(async () => {
  server = await startServer();
});

after(async () => {
  if (!server) return;
  const exited = new Promise((resolve) => server.proc.once("exit", resolve));
  server.proc.kill("SIGTERM");
  await exited;
  rmSync(server.dir, { recursive: true, force: true });
});

// --- React versions -----------------------------------------------------------------

async function react19() {
  const React = await import("react");
  const { createRoot } = await import("react-dom/client");
  return { React: React.default ?? React, createRoot };
}

function react18() {
  const require = createRequire(join(JS_DIR, "test", "react-18", "package.json"));
  return { React: require("react"), createRoot: require("react-dom/client").createRoot };
}

// --- the component ------------------------------------------------------------------

/**
 * Mount a dashboard using `useHook` with `React`; `seen` holds what the hook returned
 * on the latest render. The DOM shows status, users and the newest action.
 */
function mountDashboard({ React, createRoot }, useHook, { strict = false, page, options } = {}) {
  const { PageWebSocket, sockets } = trackingWebSocket(page);
  const seen = { current: null, renders: 0 };
  function Dashboard() {
    const live = useHook({
      url: server.url,
      token: server.token,
      WebSocketImpl: PageWebSocket,
      deltas: true,
      history: true,
      ...options,
    });
    seen.current = live;
    seen.renders += 1;
    const users = live.stats?.online?.users;
    const newest = live.notifications[0];
    return React.createElement(
      "section",
      { "data-status": live.status },
      React.createElement("p", { id: "users" }, users === undefined ? "users: -" : `users: ${users}`),
      React.createElement("p", { id: "action" }, newest ? `${newest.action} #${newest.id}` : "no actions"),
    );
  }
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  const element = React.createElement(Dashboard);
  root.render(strict ? React.createElement(React.StrictMode, null, element) : element);
  const text = (id) => container.querySelector(`#${id}`)?.textContent ?? "";
  const status = () => container.querySelector("section")?.dataset.status;
  return { root, container, sockets, seen, text, status };
}

/** What every variant must do against the live server. */
async function exercise(view) {
  try {
    await live(view);
  } finally {
    // On a failure too: a hook left mounted reconnects through the tests after it.
    view.root.unmount();
    view.container.remove();
  }
  await waitFor("every socket closed", () => view.sockets.every((s) => s.readyState === dom.window.WebSocket.CLOSED));
  await waitFor("the server saw the close", async () => (await health()).connections === 0);
}

/** Connected, counted, live: stats, history, a new action; one socket open. */
async function live(view) {
  await waitFor("status connected", () => view.status() === "connected");
  assert.equal(view.seen.current.isConnected, true);
  assert.equal(view.seen.current.connectionError, null);
  assert.equal(view.seen.current.refusal, null);
  // The demo rows: 2 users with a session in the last 15 minutes (support/demo_db.py).
  await waitFor("stats rendered", () => view.text("users") === "users: 2");
  assert.ok(view.seen.current.stats.online.connections >= 1, JSON.stringify(view.seen.current.stats));
  await waitFor("history reply", () => Array.isArray(view.seen.current.history?.times));

  const banned = await (await fetch(`${server.http}/ban`, { method: "POST" })).json();
  await waitFor("the new action rendered", () => view.text("action") === `BAN_PLAYER #${banned.id}`);

  const open = view.sockets.filter((s) => s.readyState === dom.window.WebSocket.OPEN);
  assert.equal(open.length, 1, "one open connection per mounted hook");
  assert.equal((await health()).connections, 1);
}

describe("useAdminWebSocket on real React", { timeout: 60_000 }, () => {
  test("React 19 through createUseAdminWebSocket(React)", async () => {
    const { createUseAdminWebSocket } = await import("asgi-adminstats/use-admin-websocket");
    const react = await react19();
    assert.match(react.React.version, /^19\./);
    await exercise(mountDashboard(react, createUseAdminWebSocket(react.React)));
  });

  test("React 18 through createUseAdminWebSocket(React)", async () => {
    const { createUseAdminWebSocket } = await import("asgi-adminstats/use-admin-websocket");
    const react = react18();
    assert.match(react.React.version, /^18\./);
    await exercise(mountDashboard(react, createUseAdminWebSocket(react.React)));
  });

  test("React 18 under StrictMode (effects run twice): one connection stays", async () => {
    const { createUseAdminWebSocket } = await import("asgi-adminstats/use-admin-websocket");
    const react = react18();
    await exercise(mountDashboard(react, createUseAdminWebSocket(react.React), { strict: true }));
  });

  test("React 19 under StrictMode through asgi-adminstats/react (the `react` peer)", async () => {
    const entry = await import("asgi-adminstats/react");
    const react = await react19();
    assert.equal(entry.default, entry.useAdminWebSocket);
    await exercise(mountDashboard(react, entry.useAdminWebSocket, { strict: true }));
  });

  test("the hook over globalThis.React (a UMD-style page)", async () => {
    const { useAdminWebSocket } = await import("asgi-adminstats/use-admin-websocket");
    const react = react18();
    globalThis.React = react.React;
    try {
      await exercise(mountDashboard(react, useAdminWebSocket));
    } finally {
      delete globalThis.React;
    }
  });
});

describe("a page the server does not admit", { timeout: 30_000 }, () => {
  test("React 19: status reconnecting and `refusal` says the origin is not allowed", async () => {
    const { createUseAdminWebSocket } = await import("asgi-adminstats/use-admin-websocket");
    const react = await react19();
    const elsewhere = new JSDOM("<!doctype html>", { url: "http://elsewhere.example:8080/" });
    // As a browser's fetch does: a POST carries the page's Origin.
    const fetchImpl = (url, init) => fetch(url, { ...init, headers: { Origin: elsewhere.window.origin } });
    const view = mountDashboard(react, createUseAdminWebSocket(react.React), {
      page: elsewhere.window,
      options: { reconnectInterval: 60_000, clientOptions: { fetchImpl } },
    });
    try {
      await waitFor("the refusal rendered", () => view.seen.current.refusal !== null);
      const { refusal, status, isConnected, stats } = view.seen.current;
      assert.equal(refusal.reason, "origin", JSON.stringify(refusal));
      assert.equal(refusal.origin, "http://elsewhere.example:8080");
      assert.match(refusal.hint, /allowed_origins/);
      assert.equal(status, "reconnecting");
      assert.equal(isConnected, false);
      assert.equal(stats, null);
      assert.equal((await health()).connections, 0);
    } finally {
      view.root.unmount();
      view.container.remove();
      elsewhere.window.close();
    }
  });
});

describe("one source", () => {
  test("the server's <mount>/client.js and /use-admin-websocket.js are the package's modules", async () => {
    for (const [path, file] of [
      ["/admin/ws/client.js", "adminstats.js"],
      ["/admin/ws/adminstats.js", "adminstats.js"],
      ["/admin/ws/use-admin-websocket.js", "use-admin-websocket.js"],
    ]) {
      const response = await fetch(`${server.http}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", /javascript/, path);
      const served = Buffer.from(await response.arrayBuffer());
      assert.ok(served.equals(readFileSync(join(JS_DIR, "dist", file))), `${path} != dist/${file}`);
    }
  });
});
