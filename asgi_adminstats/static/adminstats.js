// adminstats.js: browser client for the adminstats.v1 WebSocket (docs/PROTOCOL.md).
//
// A dependency-free ES module: load it as-is in a browser
//   <script type="module">
//     import { AdminStatsClient } from "/admin/ws/client.js";
//     const client = new AdminStatsClient({
//       url: "/admin/ws",                       // relative URLs resolve against the page (http -> ws)
//       getToken: async () => fetchFreshToken(), // called when the token expires or is rejected
//       onStats: (data) => render(data),         // at most once per animation frame, latest wins
//       onAction: (action, { source }) => addRow(action), // each audit action once (by id)
//       onStateChange: (state) => showStatus(state),
//       onError: ({ code, reason, fatal }) => { if (fatal) showLogin(reason); },
//     });
//     // later: client.close();
//   </script>
// or import it from Node 20+ (tests inject WebSocketImpl, timers and scheduleRender).
//
// What the client does for you (the client policy of PROTOCOL.md):
// - the token travels in the `bearer.<token>` subprotocol next to `adminstats.v1`, never
//   in the URL (unless `tokenInUrl: true`, which sends `?access_token=` instead: it ends
//   up in access logs, so only for servers configured that way);
// - a server `ping` is answered with `pong`; `token_expiring` is answered with
//   `{"type": "auth", "token": await getToken()}` on the same connection;
// - close codes: 4401/4403 mean "not with this token": if `getToken` can still supply a
//   new one (once per failure; again only after a connection succeeded) the client
//   reconnects with it at once, otherwise it stops in state "error" and calls onError.
//   4401 "unauthorized: authorization server unavailable" is the exception: the server
//   says the token may be fine, so that one backs off like a network fault.
//   1013/4429/4008 and everything else (1006, 1001, 1011, 1012, 4408, ...) reconnect after a
//   full-jitter exponential backoff, at most `maxReconnectAttempts` times in a row;
// - after a reconnect it sends `subscribe` with `since` = the newest audit id seen, so the
//   server replays what was missed; audit actions are de-duplicated by id;
// - with `deltas: true` it offers `adminstats.delta` in the handshake; a server that
//   confirms it (`connected.deltas`) sends `stats_delta` merge patches (RFC 7386) after a
//   first full snapshot, which the client applies: onStats always gets whole snapshots.
//   A patch whose base is not the snapshot held is never applied: the client asks for
//   the latest in full (`subscribe` to stats) and waits for it;
// - `requestHistory(since?)` asks for the server's snapshot history (the recent snapshots'
//   figures, for charts that start with the last hour); the reply goes to onHistory;
// - a watchdog drops a connection that says nothing for 2.5 heartbeat intervals (a
//   half-open TCP connection is otherwise noticed only minutes later), and one that does
//   not finish connecting within `connectTimeout`;
// - a socket closed before it ever opened (1006) is either a network fault or an upgrade
//   the server refused (403 Origin not allowed, 429, 503, ...): browsers hide which. The
//   client then asks the mount's `/admission` once (POST, no token: it says whether this
//   page's Origin is allowed and whether this address is rate limited) and reports a
//   refusal through `onRefused({reason, hint, ...})` and `client.refusal`; no answer means
//   a network fault (`refusal` stays null). It keeps reconnecting with backoff either way.
//
// States: "disconnected" (before connect() and after close()), "connecting" (first
// attempt), "connected" (the server's `connected` message arrived), "reconnecting"
// (waiting for the backoff, fetching a token, or re-trying), "error" (stopped: see onError).

export const PROTOCOL = "adminstats.v1";
/** Offered next to PROTOCOL by a client that applies `stats_delta` (never selected). */
export const DELTA_PROTOCOL = "adminstats.delta";

export const STATES = Object.freeze({
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  ERROR: "error",
});

/** Close codes after which the same token will not work again (PROTOCOL.md, section 4). */
export const AUTH_CLOSE_CODES = Object.freeze([4401, 4403]);
/** Close codes that mean "the server is fine, come back later". */
export const RETRY_LATER_CLOSE_CODES = Object.freeze([1013, 4429, 4008]);
/** The one 4401 reason after which the token may still be fine (a retry later may work). */
export const AUTH_SERVER_UNAVAILABLE = "unauthorized: authorization server unavailable";

const OPEN = 1; // WebSocket.OPEN, without relying on the implementation's statics
const CONNECTING = 0;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once for anything larger
const DEFAULT_SUBSCRIPTIONS = Object.freeze(["stats", "notifications"]);
const DEFAULT_HEARTBEAT_S = 30;
const ADMISSION_TIMEOUT_MS = 5000;

/**
 * Reconnect delay with "full jitter": uniform in [0, min(capMs, baseMs * 2 ** attempt)].
 * `attempt` counts from 0 (the first retry). `random` returns a number in [0, 1).
 * The result is a whole number of milliseconds, never above the ceiling and never above
 * what setTimeout can wait (2^31 - 1 ms).
 */
export function backoffDelay(attempt, { baseMs = 1000, capMs = 30000, random = Math.random } = {}) {
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  const base = Number.isFinite(baseMs) && baseMs > 0 ? baseMs : 0;
  const cap = capMs > 0 ? capMs : 0; // Infinity allowed: MAX_TIMER_MS bounds it below
  const ceiling = base === 0 ? 0 : Math.min(cap, base * 2 ** n, MAX_TIMER_MS);
  let r = Number(random());
  if (!(r >= 0)) r = 0; // NaN, negative
  if (r > 1) r = 1;
  return Math.min(ceiling, Math.floor(r * ceiling));
}

/**
 * What to do after a close with `code`:
 * - "stop": do not reconnect (4401/4403 and no new token can be had);
 * - "refresh": reconnect at once with a new token (4401/4403, and `refreshAvailable`:
 *   getToken() was not yet tried for this failure, or the token was replaced meanwhile);
 * - "backoff": reconnect after backoffDelay (1013/4429/4008, network faults, everything
 *   else, and 4401 with the reason "unauthorized: authorization server unavailable").
 */
export function closePolicy(code, { reason = "", refreshAvailable = false } = {}) {
  if (AUTH_CLOSE_CODES.includes(code)) {
    if (code === 4401 && String(reason ?? "").startsWith(AUTH_SERVER_UNAVAILABLE)) return "backoff";
    return refreshAvailable ? "refresh" : "stop";
  }
  return "backoff";
}

/** A bounded set of recent audit ids: the oldest is forgotten first. Ids compare as strings. */
export class Dedup {
  constructor(capacity = 1000) {
    if (!(capacity >= 1)) throw new RangeError("Dedup capacity must be at least 1");
    this.capacity = Math.floor(capacity);
    this._ids = new Set();
  }

  /** True if `id` was added recently (and is still remembered). */
  has(id) {
    return this._ids.has(String(id));
  }

  /** Remember `id`; true if it is new, false if it is a duplicate. */
  add(id) {
    const key = String(id);
    if (this._ids.has(key)) return false;
    this._ids.add(key);
    if (this._ids.size > this.capacity) this._ids.delete(this._ids.values().next().value);
    return true;
  }

  get size() {
    return this._ids.size;
  }

  clear() {
    this._ids.clear();
  }
}

const DIGITS = /^[0-9]+$/;

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * RFC 7386 MergePatch(target, patch): a new value; neither argument is modified (what
 * the patch leaves alone is shared with `target`). A `null` in the patch removes a key.
 */
export function applyMergePatch(target, patch) {
  if (!isObject(patch)) return patch;
  const result = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    // defineProperty: `result["__proto__"] = v` would set the prototype, not a key.
    else {
      const merged = applyMergePatch(result[key], value);
      Object.defineProperty(result, key, { value: merged, enumerable: true, writable: true, configurable: true });
    }
  }
  return result;
}

const isSeq = (value) => Number.isSafeInteger(value) && value >= 0;
const copyJson = (value) => JSON.parse(JSON.stringify(value));

/** Order of audit ids (decimal strings of any length): negative, 0 or positive. */
export function compareAuditIds(a, b) {
  const x = String(a).replace(/^0+(?=.)/, "");
  const y = String(b).replace(/^0+(?=.)/, "");
  if (DIGITS.test(x) && DIGITS.test(y)) {
    if (x.length !== y.length) return x.length - y.length;
  }
  return x < y ? -1 : x > y ? 1 : 0;
}

/** `url` as a ws:/wss: URL: relative URLs resolve against `base` (the page), http(s) maps to ws(s). */
export function resolveSocketUrl(url, base = globalThis.location?.href) {
  const text = String(url);
  let parsed;
  try {
    parsed = base ? new URL(text, base) : new URL(text);
  } catch {
    return text; // let the WebSocket constructor report it
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  return parsed.href;
}

/** The mount's `/admission` URL (http(s)) for a ws(s) endpoint URL; null if unparsable. */
export function admissionUrl(url) {
  let parsed;
  try {
    parsed = new URL(String(url));
  } catch {
    return null;
  }
  if (parsed.protocol === "ws:") parsed.protocol = "http:";
  else if (parsed.protocol === "wss:") parsed.protocol = "https:";
  parsed.search = ""; // a `tokenInUrl` token never goes along
  parsed.hash = "";
  parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}/admission`;
  return parsed.href;
}

/**
 * What a refused upgrade means, from the answer of `<mount>/admission` (`status`, and
 * its JSON `body` or null) and the page's origin: `{reason, hint, status, origin}`, with
 * `reason` one of "origin" (not in allowed_origins), "rate" (too many attempts), "upgrade"
 * (allowed, yet refused: not started, or a proxy without WebSocket support) or "unknown"
 * (not an adminstats answer: a wrong URL or an older server).
 */
export function describeRefusal({ status = null, body = null, origin = null } = {}) {
  const answer = isObject(body) && typeof body.allowed === "boolean" ? body : null;
  const page = typeof answer?.origin === "string" ? answer.origin : origin;
  const base = { status, origin: page ?? null };
  if (answer && !answer.allowed) {
    return {
      ...base,
      reason: "origin",
      hint:
        `The server refused this page's origin${page ? ` (${page})` : ""}: add it to the ` +
        "server's allowed_origins (ADMINSTATS_ALLOWED_ORIGINS).",
    };
  }
  if (answer?.limited === true) {
    return {
      ...base,
      reason: "rate",
      hint: "Too many connection attempts from this address (HTTP 429): retrying after a pause.",
    };
  }
  if (answer) {
    return {
      ...base,
      reason: "upgrade",
      hint:
        "The server is up and allows this origin but refused the WebSocket upgrade: is " +
        "adminstats started (HTTP 503), and does any proxy in between pass WebSocket upgrades?",
    };
  }
  return {
    ...base,
    reason: "unknown",
    hint:
      `The server answers HTTP${status ? ` (${status})` : ""} but refused the WebSocket ` +
      "upgrade: check the URL (the adminstats mount), that this page's origin is in " +
      "allowed_origins, and that any proxy passes WebSocket upgrades.",
  };
}

function withAccessToken(url, token) {
  try {
    const parsed = new URL(url);
    parsed.searchParams.set("access_token", token);
    return parsed.href;
  } catch {
    return `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
  }
}

function reportCallbackError(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else if (globalThis.console) globalThis.console.error("adminstats: a callback threw", err);
}

export class AdminStatsClient {
  /**
   * @param {object} options
   * @param {string|URL} options.url  ws(s):// URL, or a path resolved against the page
   * @param {string} [options.token]  bearer token (sent as the `bearer.<token>` subprotocol)
   * @param {() => string|Promise<string>} [options.getToken]  a fresh token: used when there is
   *   no `token`, on `token_expiring`, and once after a 4401/4403 close
   * @param {string[]} [options.subscriptions=["stats","notifications"]]
   * @param {number} [options.reconnectInterval=1000]  backoff base (ms)
   * @param {number} [options.maxReconnectInterval=30000]  backoff cap (ms)
   * @param {number} [options.maxReconnectAttempts=Infinity]  consecutive reconnects without
   *   reaching "connected" before giving up (state "error")
   * @param {boolean} [options.tokenInUrl=false]  send `?access_token=` instead of the subprotocol
   * @param {Function} [options.WebSocketImpl=globalThis.WebSocket]
   * @param {(data: object) => void} [options.onStats]  latest `stats_update.data`, once per frame
   * @param {(action: object, info: {source: "push"|"replay"|"snapshot"}) => void} [options.onAction]
   * @param {(state: string, info: object) => void} [options.onStateChange]
   * @param {(error: {kind: string, fatal: boolean, code: number|string|null, reason: string}) => void} [options.onError]
   * @param {(message: object) => void} [options.onMessage]  every parsed server message (raw)
   * @param {(history: {interval: number, times: number[], series: Object<string, Array<number|null>>, timestamp: string}) => void} [options.onHistory]
   *   the reply to requestHistory(): `times` in epoch ms, oldest first; per dotted path
   *   (`online.users`, ...) the values at those times (null: none)
   * @param {(cb: Function) => any} [options.scheduleRender=globalThis.requestAnimationFrame]
   * @param {(handle: any) => void} [options.cancelRender]  defaults to cancelAnimationFrame
   *   when scheduleRender is the default
   * @param {Function} [options.setTimeout] / [options.clearTimeout]  timer functions (tests)
   * @param {() => number} [options.random=Math.random]  jitter source (tests)
   * @param {number} [options.connectTimeout=15000]  ms to reach "connected"; 0 disables
   * @param {number|null} [options.idleTimeout=null]  ms of silence before a connection is
   *   dropped; null: 2.5 x the server's heartbeatInterval; 0 disables
   * @param {number} [options.dedupSize=1000]  audit ids remembered for de-duplication
   * @param {boolean} [options.autoConnect=true]  connect from the constructor
   * @param {boolean} [options.deltas=false]  ask for `stats_delta` patches (applied here:
   *   onStats still gets whole snapshots); a server without them sends full snapshots
   * @param {(refusal: object|null) => void} [options.onRefused]  the server refused the
   *   upgrade ({reason, hint, status, origin}; see describeRefusal), or null once that ends
   * @param {Function|null} [options.fetchImpl]  for asking `<mount>/admission` after a
   *   socket closed before opening; defaults to `fetch` in a page (null: never ask)
   */
  constructor(options = {}) {
    const {
      url,
      token = null,
      getToken = null,
      subscriptions = DEFAULT_SUBSCRIPTIONS,
      reconnectInterval = 1000,
      maxReconnectInterval = 30000,
      maxReconnectAttempts = Infinity,
      tokenInUrl = false,
      WebSocketImpl = globalThis.WebSocket,
      onStats = null,
      onAction = null,
      onStateChange = null,
      onError = null,
      onMessage = null,
      onHistory = null,
      onRefused = null,
      fetchImpl = globalThis.document ? globalThis.fetch : null,
      random = Math.random,
      connectTimeout = 15000,
      idleTimeout = null,
      dedupSize = 1000,
      autoConnect = true,
      deltas = false,
    } = options;
    if (url === undefined || url === null || url === "") {
      throw new TypeError("AdminStatsClient: `url` is required");
    }
    if (typeof WebSocketImpl !== "function") {
      throw new TypeError("AdminStatsClient: no WebSocket implementation (pass `WebSocketImpl`)");
    }
    if (getToken !== null && typeof getToken !== "function") {
      throw new TypeError("AdminStatsClient: `getToken` must be a function");
    }

    this.url = String(url);
    this._token = token ? String(token) : null;
    this._getToken = getToken;
    this._subscriptions = [...new Set(subscriptions ?? DEFAULT_SUBSCRIPTIONS)];
    this._baseMs = reconnectInterval;
    this._capMs = maxReconnectInterval;
    this._maxAttempts = maxReconnectAttempts ?? Infinity;
    this._tokenInUrl = Boolean(tokenInUrl);
    this._wantDeltas = Boolean(deltas);
    this._WebSocket = WebSocketImpl;
    this._random = random;
    this._connectTimeout = connectTimeout;
    this._idleOption = idleTimeout;
    this._idleMs = 0;
    this._callbacks = { onStats, onAction, onStateChange, onError, onMessage, onHistory };

    this._callbacks.onRefused = onRefused;
    // Called as a plain function: browsers throw for window.fetch called on another object.
    this._fetch = typeof fetchImpl === "function" ? (...args) => fetchImpl(...args) : null;
    // Timers and frames are called as plain functions (never as methods of `options`):
    // browsers throw "Illegal invocation" for window functions called on another object.
    const setTimer = options.setTimeout ?? globalThis.setTimeout;
    const clearTimer = options.clearTimeout ?? globalThis.clearTimeout;
    this._setTimer = (fn, ms) => setTimer(fn, ms);
    this._clearTimer = (handle) => clearTimer(handle);
    const schedule = "scheduleRender" in options ? options.scheduleRender : globalThis.requestAnimationFrame;
    const cancel = "scheduleRender" in options ? options.cancelRender : globalThis.cancelAnimationFrame;
    if (typeof schedule === "function") {
      this._scheduleFrame = (cb) => schedule(cb);
      this._cancelFrame = typeof cancel === "function" ? (handle) => cancel(handle) : () => {};
    } else {
      // No animation frames (Node, workers): coalesce on a zero-delay timer instead.
      this._scheduleFrame = (cb) => this._setTimer(cb, 0);
      this._cancelFrame = (handle) => this._clearTimer(handle);
    }

    this._state = STATES.DISCONNECTED;
    this._closed = false;
    this._gen = 0; // bumped for every attempt: stale promises and sockets check it
    this._socket = null;
    this._socketToken = null; // the token the current/last socket was opened with
    this._listeners = null;
    this._failures = 0; // consecutive closes without reaching "connected"
    this._authRetryUsed = false; // getToken() already tried for the current auth failure
    this._reconnects = 0;
    this._retryTimer = null;
    this._watchdog = null;
    this._frame = null;
    this._framePending = false;
    this._pendingStats = undefined;
    this._dedup = new Dedup(dedupSize);
    this._lastAuditId = null;
    this._connectionId = null;
    this._stats = null;
    this._deltas = false; // confirmed by the server for the current connection
    this._held = null; // {seq, data}: the snapshot patches apply to (a private copy)
    this._resyncing = false; // a full snapshot was asked for and has not come yet
    this._opened = false; // the current socket fired `open` (its upgrade succeeded)
    this._refusal = null; // why the server refuses the upgrade, while it does
    this._asking = false; // an /admission request is out
    this._history = null; // the latest `history` reply

    if (autoConnect) this.connect();
  }

  // --- public -----------------------------------------------------------------------

  get state() {
    return this._state;
  }

  /** Reconnect attempts started since the client was created (token retries included). */
  get reconnects() {
    return this._reconnects;
  }

  /** The server's id for the current connection; null while not connected. */
  get connectionId() {
    return this._connectionId;
  }

  /** The newest audit id seen (a decimal string), or null: sent as `since` on reconnect. */
  get lastAuditId() {
    return this._lastAuditId;
  }

  /**
   * Why the server refuses to upgrade this client's sockets ({reason, hint, status,
   * origin}), or null: never asked, a network fault, or connected since.
   */
  get refusal() {
    return this._refusal;
  }

  /** The latest `stats_update.data` received (not throttled), or null. */
  get stats() {
    return this._stats;
  }

  get subscriptions() {
    return [...this._subscriptions];
  }

  /** The latest `history` reply ({interval, times, series, timestamp}), or null. */
  get history() {
    return this._history;
  }

  /**
   * Ask for the server's snapshot history (PROTOCOL.md `history`); the reply goes to
   * onHistory. `since` (epoch ms): only the snapshots after it. False when not connected
   * (nothing is sent: ask again once connected). A server without history answers with
   * an `error` (onError, kind "server", code "history_disabled" or "unknown_type").
   */
  requestHistory(since) {
    if (this._state !== STATES.CONNECTED) return false;
    const request = { type: "history" };
    if (since !== undefined && since !== null) request.since = Number(since);
    return this._send(request);
  }

  /** Start connecting (done by the constructor unless autoConnect is false). */
  connect() {
    if (this._closed) throw new Error("AdminStatsClient: closed; create a new client");
    if (this._state !== STATES.DISCONNECTED) return;
    this._failures = 0;
    this._authRetryUsed = false;
    this._setState(STATES.CONNECTING);
    if (!this._closed) this._start(false);
  }

  /**
   * Connect now: skips a pending backoff wait ("reconnecting"), or starts again after
   * "error" (with the consecutive-failure count reset). No-op while connecting/connected.
   */
  reconnect() {
    if (this._closed) return;
    if (this._state === STATES.DISCONNECTED) {
      this.connect();
      return;
    }
    if (this._state === STATES.ERROR) {
      this._failures = 0;
      this._authRetryUsed = false;
    } else if (!(this._state === STATES.RECONNECTING && this._retryTimer !== null)) {
      return;
    }
    this._clearRetry();
    this._reconnects += 1;
    this._setState(STATES.RECONNECTING, { delay: 0, attempt: this._failures });
    if (!this._closed) this._start(false);
  }

  /**
   * Replace the token. Connected: sent at once as `{"type": "auth"}` (refresh in place).
   * Stopped in "error": reconnects with it. Otherwise used by the next attempt.
   */
  setToken(token) {
    if (this._closed) return;
    const next = token ? String(token) : null;
    if (next === this._token) return;
    this._token = next;
    if (!next) return;
    if (this._state === STATES.CONNECTED) this._send({ type: "auth", token: next });
    else if (this._state === STATES.ERROR) this.reconnect();
  }

  subscribe(names) {
    const added = [...names].filter((n) => !this._subscriptions.includes(n));
    this._subscriptions.push(...added);
    if (this._state === STATES.CONNECTED) this._send({ type: "subscribe", subscriptions: [...names] });
  }

  unsubscribe(names) {
    const removed = new Set(names);
    this._subscriptions = this._subscriptions.filter((n) => !removed.has(n));
    if (this._state === STATES.CONNECTED) this._send({ type: "unsubscribe", subscriptions: [...names] });
  }

  /**
   * Close the socket (1000), cancel every timer, frame and pending token request, and
   * remove all listeners. State becomes "disconnected" (onStateChange is called for that
   * one last time, synchronously); nothing fires afterwards. A closed client stays closed.
   */
  close(code = 1000, reason = "client closed") {
    if (this._closed) return;
    this._closed = true;
    this._gen += 1;
    this._clearRetry();
    this._clearWatchdog();
    if (this._framePending) {
      this._framePending = false;
      this._cancelFrame(this._frame);
      this._frame = null;
    }
    this._pendingStats = undefined;
    const socket = this._detachSocket();
    if (socket && (socket.readyState === CONNECTING || socket.readyState === OPEN)) {
      try {
        socket.close(code, reason);
      } catch {
        /* already closing */
      }
    }
    this._connectionId = null;
    const previous = this._state;
    this._state = STATES.DISCONNECTED;
    const { onStateChange } = this._callbacks;
    this._callbacks = {};
    if (previous !== STATES.DISCONNECTED && typeof onStateChange === "function") {
      try {
        onStateChange(STATES.DISCONNECTED, { previous });
      } catch (err) {
        reportCallbackError(err);
      }
    }
  }

  // --- connection -------------------------------------------------------------------

  // One attempt: get a token first when needed (none yet, or `fetchToken`), then open.
  _start(fetchToken) {
    const gen = ++this._gen;
    const needToken = this._getToken !== null && (fetchToken || this._token === null);
    if (!needToken) {
      this._open();
      return;
    }
    this._requestToken().then(
      (token) => {
        if (this._closed || gen !== this._gen) return;
        if (!token) {
          this._fail({ kind: "token", code: null, reason: "getToken() returned no token" });
          return;
        }
        this._token = String(token);
        this._open();
      },
      (error) => {
        if (this._closed || gen !== this._gen) return;
        this._fail({ kind: "token", code: null, reason: "getToken() failed", error });
      },
    );
  }

  _open() {
    const token = this._token;
    let url = resolveSocketUrl(this.url);
    const protocols = [PROTOCOL];
    if (this._wantDeltas) protocols.push(DELTA_PROTOCOL);
    if (token) {
      if (this._tokenInUrl) url = withAccessToken(url, token);
      else protocols.push(`bearer.${token}`);
    }
    let socket;
    try {
      socket = new this._WebSocket(url, protocols);
    } catch (err) {
      // SyntaxError: a bad URL, or a token with characters a subprotocol cannot carry.
      // Browsers quote the subprotocol in the message: keep the token out of it.
      let message = String(err?.message ?? err);
      if (token) message = message.split(token).join("[token]");
      this._fail({
        kind: "socket",
        code: null,
        reason: `cannot open the WebSocket (bad URL or token): ${message}`,
      });
      return;
    }
    this._socket = socket;
    this._socketToken = token;
    this._opened = false;
    const listeners = {
      open: () => {
        if (socket === this._socket) this._opened = true;
      },
      message: (event) => this._onMessage(socket, event),
      close: (event) => this._onClose(socket, event),
      error: () => {}, // a close event always follows
    };
    for (const [type, fn] of Object.entries(listeners)) socket.addEventListener(type, fn);
    this._listeners = listeners;
    this._armWatchdog(this._connectTimeout, "connect timeout");
  }

  _detachSocket() {
    const socket = this._socket;
    if (socket && this._listeners) {
      for (const [type, fn] of Object.entries(this._listeners)) socket.removeEventListener(type, fn);
    }
    this._socket = null;
    this._listeners = null;
    this._clearWatchdog();
    return socket;
  }

  _send(message) {
    const socket = this._socket;
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  _onClose(socket, event) {
    if (this._closed || socket !== this._socket) return;
    this._detachSocket();
    const code = typeof event?.code === "number" ? event.code : 1006;
    this._dropped(code, event?.reason ?? "");
    if (code === 1006 && !this._opened) this._askAdmission();
  }

  // The socket closed before it opened. The page cannot see the HTTP answer to its
  // upgrade; `<mount>/admission` says whether the server is up and would admit this page.
  // No answer (or none in time): a network fault, and no refusal to report.
  _askAdmission() {
    const url = admissionUrl(resolveSocketUrl(this.url));
    if (this._fetch === null || this._asking || url === null) return;
    this._asking = true;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const timer = controller ? this._setTimer(() => controller.abort(), ADMISSION_TIMEOUT_MS) : null;
    const origin = typeof globalThis.location?.origin === "string" ? globalThis.location.origin : null;
    Promise.resolve()
      .then(() =>
        this._fetch(url, {
          method: "POST", // browsers send Origin with every POST, same-origin ones too
          mode: "cors",
          credentials: "omit",
          cache: "no-store",
          signal: controller?.signal,
        }),
      )
      .then(async (response) => {
        const body = await response.json().catch(() => null);
        return describeRefusal({ status: response.status, body, origin });
      })
      .catch(() => null)
      .then((refusal) => {
        if (timer !== null) this._clearTimer(timer);
        this._asking = false;
        if (this._closed || this._state === STATES.CONNECTED) return;
        this._setRefusal(refusal);
      });
  }

  _setRefusal(refusal) {
    if (refusal === null && this._refusal === null) return;
    this._refusal = refusal;
    this._emit("onRefused", refusal);
  }

  // The connection is gone (closed by the server, the network, or the watchdog).
  _dropped(code, reason) {
    this._connectionId = null;
    const tokenChanged = this._token !== null && this._token !== this._socketToken;
    const canFetch = this._getToken !== null && !this._authRetryUsed;
    const policy = closePolicy(code, { reason, refreshAvailable: tokenChanged || canFetch });

    if (policy === "stop") {
      this._fail({ kind: "close", code, reason });
      return;
    }
    if (policy === "refresh") {
      // A replaced token is tried as it is; otherwise ask getToken() (once per failure).
      if (!tokenChanged) this._authRetryUsed = true;
      this._reconnects += 1;
      this._setState(STATES.RECONNECTING, { code, reason, delay: 0, attempt: this._failures, refresh: true });
      if (!this._closed) this._start(!tokenChanged);
      return;
    }
    this._failures += 1;
    if (this._failures > this._maxAttempts) {
      this._fail({ kind: "close", code, reason, attempts: this._failures - 1, gaveUp: true });
      return;
    }
    const delay = backoffDelay(this._failures - 1, {
      baseMs: this._baseMs,
      capMs: this._capMs,
      random: this._random,
    });
    this._retryTimer = this._setTimer(() => {
      this._retryTimer = null;
      if (this._closed) return;
      this._reconnects += 1;
      this._start(false);
    }, delay);
    this._setState(STATES.RECONNECTING, { code, reason, delay, attempt: this._failures });
  }

  // getToken() may throw, return a value, or return a promise: always a promise here.
  _requestToken() {
    try {
      return Promise.resolve(this._getToken());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  _fail(info) {
    this._clearRetry();
    const socket = this._detachSocket();
    if (socket && (socket.readyState === CONNECTING || socket.readyState === OPEN)) {
      try {
        socket.close(1000, "client stopped");
      } catch {
        /* already closing */
      }
    }
    this._connectionId = null;
    const error = { fatal: true, ...info, reason: info.reason ?? "" };
    this._setState(STATES.ERROR, error);
    this._emit("onError", error);
  }

  _clearRetry() {
    if (this._retryTimer !== null) {
      this._clearTimer(this._retryTimer);
      this._retryTimer = null;
    }
  }

  // One timer for both "connect within connectTimeout" and "hear something every idleMs".
  _armWatchdog(ms, reason) {
    this._clearWatchdog();
    if (!(ms > 0) || !Number.isFinite(ms)) return;
    const socket = this._socket;
    this._watchdog = this._setTimer(() => {
      this._watchdog = null;
      if (this._closed || socket !== this._socket) return;
      this._detachSocket();
      try {
        socket.close(1000, reason);
      } catch {
        /* already closing */
      }
      this._dropped(1006, reason);
    }, Math.min(ms, MAX_TIMER_MS));
  }

  _clearWatchdog() {
    if (this._watchdog !== null) {
      this._clearTimer(this._watchdog);
      this._watchdog = null;
    }
  }

  // --- messages ---------------------------------------------------------------------

  _onMessage(socket, event) {
    if (this._closed || socket !== this._socket) return;
    if (this._state === STATES.CONNECTED) this._armWatchdog(this._idleMs, "no message from the server");
    if (typeof event?.data !== "string") return; // the server sends text frames only
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || typeof message !== "object" || Array.isArray(message)) return;
    this._emit("onMessage", message);
    if (this._closed || socket !== this._socket) return;
    switch (message.type) {
      case "connected":
        this._onConnected(message);
        break;
      case "stats_update":
        this._hold(message);
        this._onStats(message.data ?? null);
        break;
      case "stats_delta":
        this._onDelta(message);
        break;
      case "audit_action":
        if (message.data && typeof message.data === "object") {
          this._onAction(message.data, message.data.replayed ? "replay" : "push");
        }
        break;
      case "ping":
        this._send({ type: "pong" });
        break;
      case "token_expiring":
        this._refreshInPlace(message);
        break;
      case "history":
        if (Array.isArray(message.times) && isObject(message.series)) {
          const { interval = null, times, series, timestamp = null } = message;
          this._history = { interval, times, series, timestamp };
          this._emit("onHistory", this._history);
        }
        break;
      case "error":
        this._emit("onError", {
          kind: "server",
          fatal: false,
          code: message.code ?? null,
          reason: String(message.message ?? ""),
        });
        break;
      default:
        break; // newer servers may send more types: ignoring them keeps old clients working
    }
  }

  _onConnected(message) {
    this._failures = 0;
    this._authRetryUsed = false;
    this._connectionId = message.connectionId ?? null;
    this._deltas = this._wantDeltas && message.deltas === true;
    this._held = null;
    this._resyncing = false;
    const heartbeat = typeof message.heartbeatInterval === "number" ? message.heartbeatInterval : DEFAULT_HEARTBEAT_S;
    this._idleMs = this._idleOption ?? heartbeat * 2500;
    this._armWatchdog(this._idleMs, "no message from the server");

    // A new connection starts subscribed to what the server says (stats + notifications
    // by default): align it with ours, and ask for the actions missed while away.
    const current = Array.isArray(message.subscriptions) ? message.subscriptions : DEFAULT_SUBSCRIPTIONS;
    const extra = current.filter((name) => !this._subscriptions.includes(name));
    if (extra.length) this._send({ type: "unsubscribe", subscriptions: extra });
    const missing = this._subscriptions.filter((name) => !current.includes(name));
    if (this._subscriptions.length && (missing.length || this._lastAuditId !== null)) {
      const subscribe = { type: "subscribe", subscriptions: [...this._subscriptions] };
      if (this._lastAuditId !== null) subscribe.since = this._lastAuditId;
      this._send(subscribe);
    }
    const reconnected = this._state === STATES.RECONNECTING;
    this._setRefusal(null);
    this._setState(STATES.CONNECTED, { connectionId: this._connectionId, reconnected });
  }

  _hold(message) {
    if (!this._deltas) return;
    if (isSeq(message.seq) && isObject(message.data)) {
      this._held = { seq: message.seq, data: copyJson(message.data) };
      this._resyncing = false;
    } else {
      this._held = null; // nothing a patch could apply to
    }
  }

  // A patch applies only to the snapshot it names as its base; otherwise nothing is
  // shown and the latest is asked for in full (once, until it comes).
  _onDelta(message) {
    if (!this._deltas) return; // never asked for
    const held = this._held;
    if (held && isSeq(message.seq) && message.base === held.seq && isObject(message.data)) {
      let merged;
      try {
        merged = applyMergePatch(held.data, message.data);
      } catch {
        merged = null; // e.g. nested too deep for the stack: held stays as it was
      }
      if (isObject(merged)) {
        this._held = { seq: message.seq, data: merged };
        this._onStats(copyJson(merged));
        return;
      }
    }
    if (this._resyncing) return;
    this._resyncing = true;
    this._send({ type: "subscribe", subscriptions: ["stats"] });
  }

  _onStats(data) {
    const recent = data?.activity?.recentActions;
    if (Array.isArray(recent)) {
      // Newest first on the wire; hand them over oldest first, like pushes and replays.
      const actions = recent.filter((a) => a && typeof a === "object");
      actions.sort((a, b) => compareAuditIds(a.id ?? "", b.id ?? ""));
      for (const action of actions) {
        this._onAction(action, "snapshot");
        if (this._closed) return;
      }
    }
    this._stats = data;
    this._pendingStats = data;
    if (this._framePending) return; // the frame already queued renders the latest
    this._framePending = true;
    this._frame = this._scheduleFrame(() => {
      if (this._closed || !this._framePending) return;
      this._framePending = false;
      this._frame = null;
      const latest = this._pendingStats;
      this._pendingStats = undefined;
      this._emit("onStats", latest);
    });
  }

  _onAction(action, source) {
    const id = action.id;
    if (id !== undefined && id !== null) {
      if (!this._dedup.add(id)) return;
      const text = String(id);
      if (DIGITS.test(text) && (this._lastAuditId === null || compareAuditIds(text, this._lastAuditId) > 0)) {
        this._lastAuditId = text;
      }
    }
    this._emit("onAction", action, { source });
  }

  _refreshInPlace(message) {
    const expiresAt = message.expiresAt ?? null;
    if (this._getToken === null) {
      this._emit("onError", {
        kind: "token",
        fatal: false,
        code: null,
        reason: "token expiring and no getToken() to renew it",
        expiresAt,
      });
      return;
    }
    const socket = this._socket;
    this._requestToken().then(
      (token) => {
        if (this._closed) return;
        if (!token) {
          this._emit("onError", { kind: "token", fatal: false, code: null, reason: "getToken() returned no token", expiresAt });
          return;
        }
        this._token = String(token);
        // Sent only on the connection that asked; a newer one already uses this token
        // (or will: _socketToken differs, so a 4401 reconnects with it).
        if (socket === this._socket) this._send({ type: "auth", token: this._token });
      },
      (error) => {
        if (this._closed) return;
        this._emit("onError", { kind: "token", fatal: false, code: null, reason: "getToken() failed", error, expiresAt });
      },
    );
  }

  // --- callbacks --------------------------------------------------------------------

  _setState(state, info = {}) {
    const previous = this._state;
    this._state = state;
    this._emit("onStateChange", state, { previous, ...info });
  }

  _emit(name, ...args) {
    if (this._closed) return;
    const fn = this._callbacks[name];
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (err) {
      reportCallbackError(err);
    }
  }
}
