// Live admin dashboard over the component's browser client (AdminStatsClient, served by
// the component itself at /admin/ws/client.js): the client owns the connection (token in
// the subprotocol, pings, reconnects with backoff, `since` replay, de-duplication); this
// page owns the token (sessionStorage: gone when the tab closes) and plain DOM updates.
// No framework, no build step, no CDN.

import { AdminStatsClient, compareAuditIds } from "/admin/ws/client.js";
import { Series, TimeChart } from "./chart.js";

const TOKEN_KEY = "adminstats.token";
const MAX_ACTIONS = 20;
const HIGHLIGHT_MS = 8000;
const FLASH_MS = 1200;
// The charts' window: the server's snapshot history (history_seconds, an hour by default)
// fills it when the page connects (PROTOCOL.md `history`).
const HISTORY_MS = 60 * 60_000;
// Which figure of the history each chart draws (its dotted path in the snapshot's data).
const HISTORY_PATHS = { users: "online.users", latency: "system.database.latency", memory: "system.memory.used" };
// A handful of admins, not thousands of clients: a short backoff cap brings the
// dashboard back soon after a deploy (full jitter still spreads the reconnects).
const MAX_RECONNECT_MS = 10_000;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const CLOSE_TEXT = {
  1000: "normal closure", 1001: "going away", 1006: "connection lost", 1011: "internal error",
  1012: "service restart", 1013: "try again later", 4008: "slow consumer", 4401: "unauthorized",
  4403: "forbidden", 4408: "timeout", 4429: "rate limited",
};
const STATUS = {
  live: "Live",
  reconnecting: "Reconnecting…",
  refused: "Refused",
  offline: "Offline",
  connecting: "Connecting…",
};

const $ = (id) => document.getElementById(id);

const state = {
  config: { dev: false, wsPath: "/admin/ws" },
  client: null,
  everConnected: false, // "connecting" after a connection is a reconnect to the eye
  user: null,
  lastClose: null, // {code, reason, at}
  refusal: null, // the client's: why the server refuses the upgrade (it still retries)
  retryAt: 0,
  lastUpdateAt: 0,
  statsInterval: 5,
  serverStale: false,
  snapshots: 0, // stats_update and stats_delta messages seen: the first one's actions are history, not news
  historyAsked: false, // the charts' history is asked for once, on the page's first connection
  lastSnapshotAt: 0, // the server's time (epoch ms) of the newest snapshot seen
  gap: null, // {from, to}: server times of the snapshots either side of a dropped connection
  actions: new Map(), // id -> action
  actionItems: new Map(), // id -> <li>, reused so highlights survive re-renders
};

const series = {
  users: new Series(HISTORY_MS),
  latency: new Series(HISTORY_MS),
  memory: new Series(HISTORY_MS),
};
let charts = null;

// --- token ------------------------------------------------------------------------

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the user pastes the token again after a reload
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

function showAuth(message, kind = "") {
  $("auth").hidden = false;
  const text = $("auth-message");
  text.textContent = message;
  text.dataset.kind = kind;
  $("dev-login").hidden = !state.config.dev;
  $("token-form").hidden = state.config.dev;
  $("sign-out").hidden = true;
  if (!state.config.dev) $("token-input").focus();
}

function hideAuth() {
  $("auth").hidden = true;
  $("sign-out").hidden = false;
}

async function fetchDevToken() {
  const response = await fetch("/admin/api/dev-login", { method: "POST" });
  if (!response.ok) throw new Error(`dev login: HTTP ${response.status}`);
  const body = await response.json();
  if (body.warning) console.warn(`adminstats: ${body.warning}`);
  storeToken(body.token);
  return body.token;
}

async function devLogin() {
  const button = $("dev-login");
  button.disabled = true;
  try {
    useToken(await fetchDevToken());
  } catch (err) {
    showAuth(`Dev login failed (${err.message}).`, "error");
  } finally {
    button.disabled = false;
  }
}

function submitToken(event) {
  event.preventDefault();
  const input = $("token-input");
  const token = input.value.trim().replace(/^bearer\s+/i, "");
  if (!JWT_SHAPE.test(token)) {
    showAuth("That does not look like a JWT (three dot-separated parts).", "error");
    return;
  }
  input.value = "";
  storeToken(token);
  useToken(token);
}

// The client calls this when the token expires soon or was refused. In dev mode a new
// dev token is one request away; otherwise only the user can supply one.
async function renewToken() {
  if (state.config.dev) return fetchDevToken();
  throw new Error("a new token must be pasted");
}

function signOut() {
  storeToken(null);
  stopClient();
  setStatus("offline");
  showAuth("Signed out. An admin token is needed to see live stats.");
}

// --- connection -------------------------------------------------------------------

function useToken(token) {
  hideAuth();
  if (state.client) {
    state.client.setToken(token); // connected: sent in place; stopped: reconnects with it
    return;
  }
  state.client = new AdminStatsClient({
    url: state.config.wsPath,
    token,
    getToken: renewToken,
    maxReconnectInterval: MAX_RECONNECT_MS,
    deltas: true, // patches after the first snapshot (PROTOCOL.md, stats_delta)
    onStateChange,
    onStats: renderStats,
    onHistory: fillCharts,
    onAction: (action, { source }) => {
      // The first snapshot brings history; anything after that is news.
      const news = source !== "snapshot" || state.snapshots > 1;
      mergeActions([action], news, source);
    },
    onMessage,
    onError,
    onRefused,
  });
}

function stopClient() {
  if (state.client) state.client.close();
  state.client = null;
  onRefused(null); // a closed client says nothing more
  state.retryAt = 0;
  renderConnection();
}

function onMessage(message) {
  if (message.type === "connected") {
    state.user = message.user?.sub ?? null;
    if (typeof message.statsInterval === "number") state.statsInterval = message.statsInterval;
  } else if (message.type === "stats_update" || message.type === "stats_delta") {
    state.snapshots += 1;
    const at = Date.parse(message.timestamp);
    if (!Number.isFinite(at)) return;
    if (state.gap && state.gap.to === null) {
      // The first snapshot after a reconnect: ask what the charts missed in between.
      state.gap.to = at;
      if (!state.client?.requestHistory(state.gap.from)) state.gap = null;
    }
    state.lastSnapshotAt = at;
  }
}

function onStateChange(clientState, info) {
  state.retryAt = clientState === "reconnecting" && info.delay > 0 ? Date.now() + info.delay : 0;
  // The close worth showing ends a live connection (or refuses the token): the failed
  // attempts of an outage that follow would only say "1006".
  if (typeof info.code === "number" && (info.previous === "connected" || [4401, 4403].includes(info.code) || !state.lastClose)) {
    state.lastClose = { code: info.code, reason: info.reason ?? "", at: new Date() };
  }
  if (info.previous === "connected" && clientState !== "connected") {
    const now = Date.now();
    for (const s of Object.values(series)) s.break(now);
    if (state.lastSnapshotAt) state.gap = { from: state.lastSnapshotAt, to: null };
  }
  switch (clientState) {
    case "connected":
      if (!state.historyAsked) state.historyAsked = state.client?.requestHistory() ?? false;
      state.everConnected = true;
      setStatus("live");
      hideAuth();
      break;
    case "reconnecting":
      setStatus(state.refusal ? "refused" : "reconnecting");
      break;
    case "connecting":
      setStatus(state.everConnected ? "reconnecting" : "connecting");
      break;
    default: // "disconnected", "error"
      setStatus("offline");
      break;
  }
  renderConnection();
}

// The upgrade was refused (the client asked the server's /admission why): say what to
// check. Cleared by the client once a connection succeeds.
function onRefused(refusal) {
  state.refusal = refusal;
  const banner = $("refused");
  banner.hidden = refusal === null;
  if (refusal === null) return;
  banner.dataset.reason = refusal.reason;
  banner.textContent = refusal.reason === "origin"
    ? `The server refused the connection: is this page's origin (${refusal.origin ?? location.origin}) ` +
      "in ADMINSTATS_ALLOWED_ORIGINS? Retrying with backoff."
    : `The server refused the connection. ${refusal.hint}`;
  if (state.client?.state === "reconnecting") setStatus("refused");
}

function onError(error) {
  if (error.kind === "server") {
    console.warn(`adminstats: server error ${error.code}: ${error.reason}`);
    return;
  }
  if (!error.fatal) {
    // token_expiring without a way to renew: the connection lasts until the token's exp.
    if (!state.config.dev) showAuth("Your token expires soon: paste a new one to stay connected.");
    return;
  }
  // Stopped: the token was refused (and no new one could be had), or retries ran out.
  const close = state.lastClose;
  const refused = error.kind === "token" || error.code === 4401 || error.code === 4403;
  if (refused) storeToken(null);
  stopClient();
  setStatus("offline");
  const why = close && [4401, 4403].includes(close.code)
    ? `${close.code}: ${close.reason || CLOSE_TEXT[close.code]}`
    : error.reason;
  const next = state.config.dev ? "Use Dev login again." : "Paste a new token.";
  showAuth(refused ? `Token refused (${why}). ${next}` : `Disconnected (${why}).`, "error");
}

function setStatus(kind) {
  $("status").dataset.state = kind;
  $("status-text").textContent = STATUS[kind];
}

// --- rendering --------------------------------------------------------------------

function setNumber(id, value, format = (v) => v.toLocaleString()) {
  const el = $(id);
  if (typeof value !== "number") {
    el.textContent = "–";
    delete el.dataset.value;
    return;
  }
  const previous = el.dataset.value === undefined ? null : Number(el.dataset.value);
  el.dataset.value = String(value);
  el.textContent = format(value);
  if (previous !== null && previous !== value) flash(el);
}

// A brief tint on change, the same either way: more memory is bad news, more players good.
function flash(el) {
  el.classList.add("changed");
  clearTimeout(el.flashTimer);
  el.flashTimer = setTimeout(() => el.classList.remove("changed"), FLASH_MS);
}

function renderStats(data) {
  if (!data) return;
  const now = Date.now();
  const online = data.online ?? {};
  const totals = data.totals ?? {};
  const system = data.system ?? {};
  const meta = data.meta ?? {};

  setNumber("online-users", online.users);
  setNumber("online-players", online.players);
  setNumber("admin-connections", online.connections);
  $("admin-connections-unit").textContent =
    typeof online.connections === "number" ? ` ${plural(online.connections, "connection")}` : "";
  setNumber("total-players", totals.players);
  setNumber("total-villages", totals.villages);

  const database = system.database ?? null;
  $("card-database").dataset.status = database?.status ?? "unknown";
  $("db-status").textContent = database?.status ?? "–";
  $("db-latency").textContent = formatLatency(database?.latency);

  const memory = system.memory ?? null;
  setNumber("memory-used", memory?.used);
  setNumber("memory-total", memory?.total);
  $("uptime").textContent = formatUptime(system.uptime);

  series.users.add(now, online.users);
  series.latency.add(now, database?.latency);
  series.memory.add(now, memory?.used);
  drawCharts(now);

  $("conn-instance").textContent = meta.instance ?? "–";
  state.serverStale = Boolean(meta.stale);
  state.lastUpdateAt = now;
  renderConnection();
}

// The server's recent snapshots, put before the live samples: the charts start with the
// last hour, not empty; after a reconnect, those it missed go into the break. Times are
// the server's, live samples the page's: close enough.
function fillCharts(history) {
  const gap = state.gap;
  state.gap = null;
  for (const [name, path] of Object.entries(HISTORY_PATHS)) {
    const values = history.series[path];
    if (!Array.isArray(values)) continue;
    const samples = history.times.map((t, i) => ({ t, v: typeof values[i] === "number" ? values[i] : null }));
    series[name].prepend(samples);
    // Up to the first snapshot after the reconnect, which the page drew itself.
    if (gap?.to) series[name].fillBreak(samples.filter((p) => p.t > gap.from && p.t < gap.to), 2 * history.interval * 1000);
  }
  drawCharts();
}

function drawCharts(now = Date.now()) {
  if (!charts) return;
  for (const [name, chart] of Object.entries(charts)) {
    chart.draw(series[name], now);
    const span = chart.element.closest(".trend")?.querySelector("[data-span]");
    if (span) span.textContent = `last ${formatSpan(chart.span())}`;
  }
}

function newestFirst(a, b) {
  return compareAuditIds(String(b.id), String(a.id));
}

function mergeActions(list, highlight, source) {
  const fresh = [];
  for (const action of list) {
    if (!action || action.id === undefined || action.id === null) continue;
    const id = String(action.id);
    if (!state.actions.has(id)) fresh.push(id);
    state.actions.set(id, { ...state.actions.get(id), ...action });
    // Which path brought it first, and whether the live channel has confirmed it.
    const item = actionItem(state.actions.get(id));
    if (!item.dataset.source) item.dataset.source = source;
    if (source !== "api") item.dataset.live = "true";
  }
  const kept = [...state.actions.values()].sort(newestFirst).slice(0, MAX_ACTIONS);
  const keptIds = new Set(kept.map((action) => String(action.id)));
  for (const id of [...state.actions.keys()]) {
    if (!keptIds.has(id)) {
      state.actions.delete(id);
      state.actionItems.delete(id);
    }
  }
  $("recent-actions").replaceChildren(...kept.map((action) => state.actionItems.get(String(action.id))));
  $("actions-empty").hidden = kept.length > 0;
  if (!highlight) return;
  for (const id of fresh) {
    const item = state.actionItems.get(id);
    if (!item) continue;
    item.classList.add("is-new");
    setTimeout(() => item.classList.remove("is-new"), HIGHLIGHT_MS);
  }
}

// Text only (never innerHTML): admin names come from the database.
function actionItem(action) {
  const id = String(action.id);
  let item = state.actionItems.get(id);
  if (!item) {
    item = document.createElement("li");
    item.className = "action";
    item.dataset.testid = "recent-action";
    item.dataset.actionId = id;
    state.actionItems.set(id, item);
  }
  const when = action.timestamp ? new Date(action.timestamp) : null;
  const time = span("action-time", when && !Number.isNaN(when.getTime()) ? shortDate(when) : "–");
  if (action.timestamp) time.title = action.timestamp;
  const name = span("action-name", (action.action ?? "?").replaceAll("_", " "));
  name.dataset.kind = action.action ?? "";
  const admin = span("action-admin", action.admin ?? "?");
  // The target's type, and the audit log's own id apart from it ("player #16" read as
  // player 16): the wire carries no target id (PROTOCOL.md, recentActions).
  const target = span("action-target", `${(action.targetType ?? "?").toLowerCase()}`);
  target.title = "target type";
  const number = span("action-id", `audit #${id}`);
  number.title = `audit log entry ${id}`;
  item.dataset.action = action.action ?? "";
  item.replaceChildren(time, name, admin, target, number);
  return item;
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// Every second, and on every state change: ages and countdowns move between messages.
function renderConnection() {
  const client = state.client;
  const live = client?.state === "connected";
  const age = state.lastUpdateAt ? Math.max(0, Math.round((Date.now() - state.lastUpdateAt) / 1000)) : null;
  $("last-update").textContent = age === null ? "never" : `${formatAge(age)} ago`;
  const late = age !== null && age > state.statsInterval * 2.5;
  $("stale").hidden = !(state.lastUpdateAt && (state.serverStale || late || !live));
  $("conn-id").textContent = client?.connectionId ?? "–";
  $("conn-user").textContent = live ? state.user ?? "–" : "–";
  $("conn-reconnects").textContent = String(client?.reconnects ?? 0);

  const close = state.lastClose;
  let text = "–";
  if (close) {
    const reason = close.reason || CLOSE_TEXT[close.code] || "";
    text = `${close.code}${reason ? ` ${reason}` : ""} at ${clock(close.at)}`;
  }
  if (state.retryAt && client?.state === "reconnecting") {
    text += ` · next try in ${Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000))} s`;
  }
  $("close-info").textContent = text;
  $("reconnect-now").hidden = !(client && (client.state === "reconnecting" || client.state === "error"));
}

// --- formatting -------------------------------------------------------------------

/** "1 connection", "2 connections": the noun for `count` (English plurals with -s). */
function plural(count, noun) {
  return count === 1 ? noun : `${noun}s`;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function shortDate(date) {
  const today = new Date().toDateString() === date.toDateString();
  if (today) return clock(date);
  const day = date.toLocaleDateString([], { month: "short", day: "numeric" });
  return `${day} ${date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

function formatLatency(ms) {
  if (typeof ms !== "number") return "–";
  return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
}

function formatUptime(seconds) {
  if (typeof seconds !== "number") return "–";
  // h:mm:ss fits one line of a card even on a narrow screen; days only when needed.
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d ? `${d}d ` : ""}${h}:${pad(m)}:${pad(s % 60)}`;
}

function formatAge(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function formatSpan(ms) {
  const s = Math.round(ms / 1000);
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

// Axis labels: as many decimals as the grid step needs.
function axisNumber(value, step = 1) {
  const decimals = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return value.toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

// --- moderation -------------------------------------------------------------------

function showResult(message, kind) {
  const result = $("moderate-result");
  result.textContent = message;
  result.dataset.kind = kind;
}

async function moderate(kind) {
  const raw = $("player-id").value.trim();
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) {
    showResult("Enter a player id (a positive whole number).", "error");
    return;
  }
  const token = readToken();
  if (!token) {
    showResult("Sign in first.", "error");
    return;
  }
  const buttons = [$("ban-button"), $("unban-button")];
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const response = await fetch(`/admin/api/players/${raw}/${kind}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      const verb = kind === "ban" ? "Banned" : "Unbanned";
      showResult(`${verb} player ${raw} (audit #${body.id}).`, "ok");
      // Shown at once even if the socket is down; the push that follows has the same id.
      mergeActions([body], true, "api");
    } else if (response.status === 401 || response.status === 403) {
      showResult(`Not allowed: ${body.error ?? response.statusText}`, "error");
    } else {
      showResult(body.error ?? `Request failed (HTTP ${response.status}).`, "error");
    }
  } catch {
    showResult("Network error: the request did not reach the server.", "error");
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

// --- start ------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch("/admin/api/config", { cache: "no-store" });
    if (response.ok) Object.assign(state.config, await response.json());
  } catch {
    /* keep the defaults: the socket still works without the config */
  }
}

async function main() {
  charts = {
    users: new TimeChart($("chart-users"), {
      color: "#3b6fd8", label: "Online users", minStep: 1, format: axisNumber,
    }),
    latency: new TimeChart($("chart-latency"), {
      color: "#0f9488", label: "Database latency (ms)", zero: true, format: axisNumber,
    }),
    memory: new TimeChart($("chart-memory"), {
      color: "#8b5cf6", label: "Memory used (MiB)", minStep: 1, format: axisNumber,
    }),
  };
  drawCharts();
  await loadConfig();
  $("dev-banner").hidden = !state.config.dev;
  $("dev-login").addEventListener("click", devLogin);
  $("token-form").addEventListener("submit", submitToken);
  $("sign-out").addEventListener("click", signOut);
  $("reconnect-now").addEventListener("click", () => state.client?.reconnect());
  $("moderate-form").addEventListener("submit", (event) => event.preventDefault());
  $("ban-button").addEventListener("click", () => moderate("ban"));
  $("unban-button").addEventListener("click", () => moderate("unban"));
  window.addEventListener("online", () => state.client?.reconnect());
  setInterval(() => {
    renderConnection();
    drawCharts(); // the window slides on even when nothing arrives
  }, 1000);

  const token = readToken();
  if (token) {
    useToken(token);
  } else {
    setStatus("offline");
    showAuth("An admin token is needed to see live stats.");
  }
}

main();
