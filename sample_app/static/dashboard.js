// Live admin dashboard: one adminstats.v1 WebSocket, the token kept in sessionStorage
// (gone when the tab closes), and plain DOM updates: no framework, no build step.

const PROTOCOL = "adminstats.v1";
const TOKEN_KEY = "adminstats.token";
const MAX_ACTIONS = 20;
const HIGHLIGHT_MS = 2500;
const FLASH_MS = 1200;
const BACKOFF_START_MS = 1000;
const BACKOFF_CAP_MS = 30000;
// The server says these tokens will never work: retrying would only hammer it.
const AUTH_CLOSE_CODES = new Set([4401, 4403]);
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const CLOSE_TEXT = {
  1000: "normal closure", 1001: "going away", 1006: "connection lost",
  1011: "internal error", 1013: "try again later", 4008: "slow consumer",
  4401: "unauthorized", 4403: "forbidden", 4408: "timeout", 4429: "rate limited",
};

const $ = (id) => document.getElementById(id);

const state = {
  config: { dev: false, wsPath: "/admin/ws" },
  socket: null,
  live: false,
  attempt: 0,
  retryTimer: 0,
  retryAt: 0,
  lastClose: "",
  lastUpdateAt: 0,
  statsInterval: 5,
  serverStale: false,
  firstStatsSeen: false,
  actions: new Map(), // id -> action, as the server sent it
  actionItems: new Map(), // id -> <li>, reused so highlights survive re-renders
};

// --- token ------------------------------------------------------------------------

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the user pastes the token again after a reload
  }
}

function setToken(token) {
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

async function devLogin() {
  const button = $("dev-login");
  button.disabled = true;
  try {
    const response = await fetch("/admin/api/dev-login", { method: "POST" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    setToken(body.token);
    if (body.warning) console.warn(`adminstats: ${body.warning}`);
    state.attempt = 0;
    useToken(body.token);
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
  setToken(token);
  state.attempt = 0;
  useToken(token);
}

// A live connection takes a new token in place (PROTOCOL.md: auth refresh).
function useToken(token) {
  if (state.live && state.socket) {
    send(state.socket, { type: "auth", token });
    hideAuth();
  } else {
    connect();
  }
}

async function refreshExpiringToken() {
  if (state.config.dev) {
    await devLogin();
  } else {
    showAuth("Your token expires soon: paste a new one to stay connected.");
  }
}

function signOut() {
  setToken(null);
  const socket = state.socket;
  state.socket = null; // its close event is now ignored: no reconnect
  state.live = false;
  clearTimeout(state.retryTimer);
  state.retryAt = 0;
  if (socket) socket.close(1000, "signed out");
  setStatus("offline", "Offline");
  showAuth("Signed out. An admin token is needed to see live stats.");
}

// --- connection -------------------------------------------------------------------

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status-text").textContent = text;
}

function send(socket, message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryAt = 0;
  const token = getToken();
  if (!token) {
    setStatus("offline", "Offline");
    showAuth("An admin token is needed to see live stats.");
    return;
  }
  hideAuth();
  setStatus("connecting", "Connecting…");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let socket;
  try {
    // The token rides in a subprotocol: browsers cannot set an Authorization header.
    socket = new WebSocket(`${scheme}//${location.host}${state.config.wsPath}`,
                           [PROTOCOL, `bearer.${token}`]);
  } catch {
    setToken(null);
    setStatus("offline", "Offline");
    showAuth("That token cannot be sent (it is not a JWT). Enter a new one.", "error");
    return;
  }
  state.socket = socket;
  socket.addEventListener("message", (event) => {
    if (state.socket === socket) onMessage(socket, event);
  });
  socket.addEventListener("close", (event) => {
    if (state.socket === socket) onClose(event);
  });
}

function onMessage(socket, event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  switch (message.type) {
    case "connected":
      onConnected(socket, message);
      break;
    case "stats_update":
      renderStats(message.data ?? {});
      break;
    case "audit_action":
      if (message.data) mergeActions([message.data], true);
      break;
    case "ping":
      send(socket, { type: "pong" });
      break;
    case "token_expiring":
      refreshExpiringToken();
      break;
    case "error":
      console.warn(`adminstats error ${message.code}: ${message.message}`);
      break;
    default:
      break; // newer servers may send more; ignoring them keeps old pages working
  }
}

function onConnected(socket, message) {
  state.live = true;
  state.attempt = 0;
  setStatus("live", "Live");
  $("conn-id").textContent = message.connectionId ?? "–";
  $("conn-user").textContent = message.user?.sub ?? "–";
  if (typeof message.statsInterval === "number") state.statsInterval = message.statsInterval;
  // After a reconnect, ask for the actions missed while away (the server bounds it).
  const since = newestActionId();
  if (since !== null) {
    send(socket, { type: "subscribe", subscriptions: ["stats", "notifications"], since });
  }
}

function onClose(event) {
  state.socket = null;
  state.live = false;
  setStatus("offline", "Offline");
  const reason = event.reason || CLOSE_TEXT[event.code] || "";
  state.lastClose = `${event.code}${reason ? ` ${reason}` : ""} at ${clock(new Date())}`;
  if (AUTH_CLOSE_CODES.has(event.code)) {
    setToken(null);
    const next = state.config.dev ? "Use Dev login again." : "Paste a new token.";
    showAuth(`Token rejected (${event.code}${reason ? `: ${reason}` : ""}). ${next}`, "error");
  } else {
    scheduleReconnect();
  }
  renderClock();
}

function scheduleReconnect() {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** state.attempt);
  // ±25 % jitter: after a server restart, dashboards do not all return in one burst.
  const delay = Math.min(BACKOFF_CAP_MS, base * (0.75 + Math.random() * 0.5));
  state.attempt += 1;
  state.retryAt = Date.now() + delay;
  state.retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (state.retryAt && getToken()) {
    state.attempt = 0;
    connect();
  }
}

// --- rendering --------------------------------------------------------------------

function setNumber(id, value) {
  const el = $(id);
  if (typeof value !== "number") {
    el.textContent = "–";
    delete el.dataset.value;
    return;
  }
  const previous = el.dataset.value === undefined ? null : Number(el.dataset.value);
  el.dataset.value = String(value);
  el.textContent = value.toLocaleString();
  if (previous !== null && previous !== value) flash(el, value > previous ? "went-up" : "went-down");
}

function flash(el, className) {
  el.classList.remove("went-up", "went-down");
  el.classList.add(className);
  setTimeout(() => el.classList.remove(className), FLASH_MS);
}

function renderStats(data) {
  const online = data.online ?? {};
  const totals = data.totals ?? {};
  const system = data.system ?? {};
  const meta = data.meta ?? {};
  setNumber("online-users", online.users);
  setNumber("online-players", online.players);
  setNumber("admin-connections", online.connections);
  setNumber("total-players", totals.players);
  setNumber("total-villages", totals.villages);

  const database = system.database ?? null;
  $("card-database").dataset.status = database?.status ?? "unknown";
  $("db-status").textContent = database?.status ?? "–";
  $("db-latency").textContent = formatLatency(database?.latency);

  const memory = system.memory ?? null;
  setNumber("memory-used", memory?.used);
  setNumber("memory-total", memory?.total);
  const share = memory && memory.total > 0 ? Math.min(100, (100 * memory.used) / memory.total) : 0;
  $("memory-bar").style.width = `${share}%`;
  $("uptime").textContent = formatUptime(system.uptime);

  // The first snapshot is history; later unseen ids are news the push did not bring.
  mergeActions(data.activity?.recentActions ?? [], state.firstStatsSeen);
  state.firstStatsSeen = true;

  $("conn-instance").textContent = meta.instance ?? "–";
  state.serverStale = Boolean(meta.stale);
  state.lastUpdateAt = Date.now();
  renderClock();
}

function actionOrder(a, b) {
  const x = Number(a.id);
  const y = Number(b.id);
  if (Number.isFinite(x) && Number.isFinite(y)) return y - x;
  return String(b.timestamp).localeCompare(String(a.timestamp));
}

function newestActionId() {
  const [newest] = [...state.actions.values()].sort(actionOrder);
  return newest ? String(newest.id) : null;
}

function mergeActions(list, highlight) {
  const fresh = [];
  for (const action of list) {
    if (!action || action.id === undefined || action.id === null) continue;
    const id = String(action.id);
    if (!state.actions.has(id)) fresh.push(id);
    state.actions.set(id, action);
  }
  const kept = [...state.actions.values()].sort(actionOrder).slice(0, MAX_ACTIONS);
  const keptIds = new Set(kept.map((action) => String(action.id)));
  for (const id of [...state.actions.keys()]) {
    if (!keptIds.has(id)) {
      state.actions.delete(id);
      state.actionItems.delete(id);
    }
  }
  const items = kept.map((action) => actionItem(action));
  $("recent-actions").replaceChildren(...items);
  $("actions-empty").hidden = items.length > 0;
  if (highlight) {
    for (const id of fresh) {
      const item = state.actionItems.get(id);
      if (!item) continue;
      item.classList.add("is-new");
      setTimeout(() => item.classList.remove("is-new"), HIGHLIGHT_MS);
    }
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
  const name = span("action-name", action.action ?? "?");
  name.dataset.kind = action.action ?? "";
  const admin = span("action-admin", action.admin ?? "?");
  const target = span("action-target", `${action.targetType ?? "?"} · #${id}`);
  item.dataset.action = action.action ?? "";
  item.replaceChildren(time, name, admin, target);
  return item;
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// Runs every second: ages and countdowns move even when no message arrives.
function renderClock() {
  const age = state.lastUpdateAt ? Math.round((Date.now() - state.lastUpdateAt) / 1000) : null;
  $("last-update").textContent = age === null ? "never" : `${formatDuration(age)} ago`;
  const late = age !== null && age > state.statsInterval * 2.5;
  $("stale").hidden = !(state.lastUpdateAt && (state.serverStale || late || !state.live));
  let close = state.lastClose || "–";
  if (state.retryAt) {
    const wait = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    close += ` · reconnecting in ${wait} s`;
  }
  $("close-info").textContent = close;
}

// --- formatting -------------------------------------------------------------------

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

function formatDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
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
  const token = getToken();
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
      showResult(`${verb} player ${raw} (action #${body.id}).`, "ok");
      mergeActions([body], true); // the push follows; ids dedupe it
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
  await loadConfig();
  $("dev-banner").hidden = !state.config.dev;
  $("dev-login").addEventListener("click", devLogin);
  $("token-form").addEventListener("submit", submitToken);
  $("sign-out").addEventListener("click", signOut);
  $("moderate-form").addEventListener("submit", (event) => event.preventDefault());
  $("ban-button").addEventListener("click", () => moderate("ban"));
  $("unban-button").addEventListener("click", () => moderate("unban"));
  window.addEventListener("online", reconnectNow);
  setInterval(renderClock, 1000);
  connect();
}

main();
