// The React hook page: the component's useAdminWebSocket() driving a compact view.
// React comes from the vendored UMD builds loaded by hook.html (globalThis.React and
// globalThis.ReactDOM); elements are made with React.createElement: no JSX, no build.
// The token is the dashboard's (sessionStorage, same tab), or a fresh dev login.

import { useAdminWebSocket } from "/admin/ws/use-admin-websocket.js";

const { React, ReactDOM } = globalThis;
const { createElement: h, useState, useEffect, useRef, useCallback } = React;

const TOKEN_KEY = "adminstats.token";
const STATUS = {
  live: "Live",
  reconnecting: "Reconnecting…",
  refused: "Refused",
  offline: "Offline",
  connecting: "Connecting…",
};

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

async function fetchDevToken() {
  const response = await fetch("/admin/api/dev-login", { method: "POST" });
  if (!response.ok) throw new Error(`dev login: HTTP ${response.status}`);
  const { token } = await response.json();
  storeToken(token);
  return token;
}

function useConfig() {
  const [config, setConfig] = useState(null);
  useEffect(() => {
    let live = true;
    fetch("/admin/api/config", { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : {}))
      .catch(() => ({}))
      .then((body) => {
        if (live) setConfig({ dev: false, wsPath: "/admin/ws", ...body });
      });
    return () => {
      live = false;
    };
  }, []);
  return config;
}

// The same looks as the dashboard: "connecting" after a connection is a reconnect, and
// "refused" while the server refuses the upgrade (the hook's `refusal`).
function statusKind(status, everConnected, refused) {
  if (status === "connected") return "live";
  if (status === "reconnecting") return refused ? "refused" : "reconnecting";
  if (status === "connecting") return everConnected ? "reconnecting" : "connecting";
  return "offline";
}

function clock(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return "–";
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function number(value) {
  return typeof value === "number" ? value.toLocaleString() : "–";
}

/** "1 connection", "2 connections": the noun for `count` (English plurals with -s). */
function plural(count, noun) {
  return count === 1 ? noun : `${noun}s`;
}

// The dashboard's banners: the dev login warning, and what to check when refused.
function DevBanner() {
  return h(
    "div",
    { id: "dev-banner", "data-testid": "dev-banner", className: "banner banner-warn", role: "note" },
    h("strong", null, "development login enabled"),
    " — anyone who can reach this server can get an admin token. Disable it in production.",
  );
}

function RefusedBanner({ refusal }) {
  const text = refusal.reason === "origin"
    ? `The server refused the connection: is this page's origin (${refusal.origin ?? location.origin}) ` +
      "in ADMINSTATS_ALLOWED_ORIGINS? Retrying with backoff."
    : `The server refused the connection. ${refusal.hint}`;
  return h(
    "div",
    { id: "refused", "data-testid": "refused", "data-reason": refusal.reason, className: "banner banner-error", role: "alert" },
    text,
  );
}

function Status({ kind }) {
  return h(
    "div",
    { id: "status", "data-testid": "status", className: "status", "data-state": kind, role: "status", "aria-live": "polite" },
    h("span", { className: "status-dot", "aria-hidden": "true" }),
    h("span", { id: "status-text", "data-testid": "status-text" }, STATUS[kind]),
  );
}

function Card({ label, id, value, unit }) {
  return h(
    "article",
    { className: "card", "data-testid": `card-${id}` },
    h("h2", { className: "card-label" }, label),
    h("p", { className: "card-value" }, h("span", { id, "data-testid": id }, value), unit ? h("span", { className: "unit" }, ` ${unit}`) : null),
  );
}

function ActionRow({ action }) {
  const kind = action.action ?? "";
  return h(
    "li",
    { className: "action", "data-testid": "recent-action", "data-action-id": String(action.id), "data-action": kind },
    h("span", { className: "action-time", title: action.timestamp }, clock(action.timestamp)),
    h("span", { className: "action-name", "data-kind": kind }, (kind || "?").replaceAll("_", " ")),
    h("span", { className: "action-admin" }, action.admin ?? "?"),
    // The target's type, and the audit log's own id apart from it (no target id on the wire).
    h("span", { className: "action-target", title: "target type" }, String(action.targetType ?? "?").toLowerCase()),
    h("span", { className: "action-id", title: `audit log entry ${action.id}` }, `audit #${action.id}`),
  );
}

function SignIn({ dev, error, onDevLogin, busy }) {
  return h(
    "section",
    { className: "panel auth", "data-testid": "auth-panel" },
    h("h2", null, "Sign in"),
    h("p", { className: error ? "hook-error" : "auth-message", "data-testid": "auth-message" },
      error ?? "An admin token is needed to see live stats."),
    dev
      ? h("button", { id: "dev-login", "data-testid": "dev-login", className: "btn btn-primary", type: "button", onClick: onDevLogin, disabled: busy }, "Dev login")
      : h("p", null, "Sign in on the ", h("a", { href: "/admin" }, "dashboard"), " first: this page uses the same token (this tab only)."),
  );
}

function App() {
  const config = useConfig();
  const [token, setToken] = useState(readToken);
  const [signInError, setSignInError] = useState(null);
  const [busy, setBusy] = useState(false);
  const configRef = useRef(config);
  configRef.current = config;

  // The client asks when the token expires soon or is refused: in dev mode a new one is
  // a request away; otherwise the user signs in again.
  const getToken = useCallback(async () => {
    if (!configRef.current?.dev) throw new Error("sign in again");
    const fresh = await fetchDevToken();
    setToken(fresh);
    return fresh;
  }, []);

  const { status, stats, notifications, connectionError, refusal, reconnect } = useAdminWebSocket({
    url: config?.wsPath ?? "/admin/ws",
    enabled: Boolean(config && token),
    token,
    getToken,
    maxReconnectInterval: 10_000,
  });

  const everConnected = useRef(false);
  if (status === "connected") everConnected.current = true;
  const kind = statusKind(status, everConnected.current, refusal !== null);

  // Stopped for good (token refused, renewal failed): forget the token, offer a new sign-in.
  useEffect(() => {
    if (!connectionError) return;
    storeToken(null);
    setToken(null);
    if (connectionError.kind === "token") {
      setSignInError("The token was refused or has expired: sign in again.");
    } else {
      const code = connectionError.code ? `${connectionError.code}: ` : "";
      setSignInError(`Disconnected (${code}${connectionError.reason}).`);
    }
  }, [connectionError]);

  const devLogin = useCallback(async () => {
    setBusy(true);
    try {
      setToken(await fetchDevToken());
      setSignInError(null);
    } catch (err) {
      setSignInError(`Dev login failed (${err.message}).`);
    } finally {
      setBusy(false);
    }
  }, []);

  const database = stats?.system?.database ?? null;
  const connections = stats?.online?.connections;
  const latency = typeof database?.latency === "number" ? database.latency.toFixed(1) : "–";

  return h(
    React.Fragment,
    null,
    h(
      "header",
      { className: "topbar" },
      h("div", { className: "brand" },
        h("span", { className: "brand-mark", "aria-hidden": "true" }, "◆"),
        h("h1", null, "Realm admin ", h("span", { className: "brand-sub" }, "React hook"))),
      h("div", { className: "topbar-right" },
        h("a", { className: "topbar-link", href: "/admin" }, "Dashboard"),
        h(Status, { kind }),
        kind === "reconnecting" || kind === "refused" ? h("button", { className: "btn btn-ghost", type: "button", onClick: reconnect }, "Retry now") : null),
    ),
    config?.dev ? h(DevBanner) : null,
    refusal ? h(RefusedBanner, { refusal }) : null,
    h(
      "main",
      { className: "layout hook" },
      config && !token ? h(SignIn, { dev: config.dev, error: signInError, onDevLogin: devLogin, busy }) : null,
      h(
        "section",
        { className: "cards", "aria-label": "Statistics" },
        h(Card, { label: "Online users", id: "online-users", value: number(stats?.online?.users) }),
        h(Card, { label: "Admin dashboards", id: "admin-connections", value: number(connections),
          unit: typeof connections === "number" ? plural(connections, "connection") : null }),
        h(Card, { label: "Database latency", id: "db-latency", value: latency, unit: "ms" }),
      ),
      h(
        "section",
        { className: "panel", "aria-labelledby": "actions-title" },
        h("div", { className: "panel-head" },
          h("h2", { id: "actions-title" }, "Recent actions"),
          h("span", { className: "panel-note" },
            `${notifications.length} ${plural(notifications.length, "action")} · newest first`)),
        notifications.length
          ? h("ol", { id: "recent-actions", "data-testid": "recent-actions", className: "actions", "aria-live": "polite" },
            notifications.map((action) => h(ActionRow, { key: String(action.id), action })))
          : h("p", { className: "empty", "data-testid": "actions-empty" }, "No actions yet."),
      ),
      h("p", { className: "hook-note" },
        "Rendered by ", h("code", null, "useAdminWebSocket()"), " from ",
        h("code", null, "/admin/ws/use-admin-websocket.js"), ` with React ${React.version} (UMD build, vendored).`),
    ),
  );
}

ReactDOM.createRoot(document.getElementById("root")).render(h(App));
