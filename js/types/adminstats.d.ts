// Declarations for adminstats.js (asgi_adminstats/static/adminstats.js), written by hand:
// keep them in step with its exports (js/test/types-check.ts uses every one of them).
// No DOM or Node types are needed: the WebSocket, fetch and timer shapes are structural,
// so the browser's WebSocket/fetch and Node's timers fit them.

/** The WebSocket subprotocol of the wire protocol (docs/PROTOCOL.md). */
export declare const PROTOCOL: "adminstats.v1";
/** Offered next to PROTOCOL by a client that applies `stats_delta` (never selected). */
export declare const DELTA_PROTOCOL: "adminstats.delta";

export declare const STATES: Readonly<{
  DISCONNECTED: "disconnected";
  CONNECTING: "connecting";
  CONNECTED: "connected";
  RECONNECTING: "reconnecting";
  ERROR: "error";
}>;

/**
 * "disconnected" (before connect() and after close()), "connecting" (first attempt),
 * "connected" (the server's `connected` arrived), "reconnecting" (backoff, token fetch or
 * retry), "error" (stopped: see onError).
 */
export type ConnectionState = (typeof STATES)[keyof typeof STATES];

/** Close codes after which the same token will not work again. */
export declare const AUTH_CLOSE_CODES: readonly [4401, 4403];
/** Close codes that mean "the server is fine, come back later". */
export declare const RETRY_LATER_CLOSE_CODES: readonly [1013, 4429, 4008];
/** The one 4401 reason after which the token may still be fine. */
export declare const AUTH_SERVER_UNAVAILABLE: "unauthorized: authorization server unavailable";

/** The subscriptions the server knows (PROTOCOL.md, section 3). */
export type Subscription = "stats" | "notifications";

/** An audit action: an entry of `activity.recentActions`, or an `audit_action` push. */
export interface AuditAction {
  /** A decimal string; ids increase. */
  id: string;
  action: string;
  admin: string;
  targetType: string;
  timestamp: string;
  /** Present (true) on actions replayed after a reconnect. */
  replayed?: boolean;
  [field: string]: unknown;
}

/** `stats_update.data` as the shipped collectors fill it (PROTOCOL.md, section 2). A
 * failing source leaves its part `null` (or stale); a host's collectors add sections. */
export interface StatsSnapshot {
  online?: { users: number | null; players: number | null; connections: number } | null;
  totals?: { players: number | null; villages: number | null; [name: string]: unknown } | null;
  activity?: { recentActions: AuditAction[] } | null;
  system?: {
    database?: { status: "healthy" | "degraded" | "down"; latency: number | null } | null;
    memory?: { used: number; total: number } | null;
    uptime?: number;
  } | null;
  meta?: {
    instance: string;
    collectedAt: string;
    durationMs: number;
    stale: boolean;
    local?: boolean;
    sources?: Record<string, { ok: boolean; ms?: number; [field: string]: unknown }>;
    bus?: { backend: string; status: string; since?: string | null; reconnects?: number; error?: string | null };
    [field: string]: unknown;
  };
  [section: string]: unknown;
}

/** The reply to requestHistory(): `times` in epoch ms, oldest first; per dotted path
 * (`online.users`, ...) the values at those times (null: none). */
export interface StatsHistory {
  /** The server's stats_interval (seconds). */
  interval: number | null;
  times: number[];
  series: Record<string, Array<number | null>>;
  timestamp: string | null;
}

/** Why the server refuses the WebSocket upgrade (see describeRefusal). */
export interface Refusal {
  reason: "origin" | "rate" | "upgrade" | "unknown";
  /** A sentence for a person: what to change. */
  hint: string;
  /** The HTTP status of `<mount>/admission`'s answer. */
  status: number | null;
  /** The page's origin as the server saw it (or as the page knows it). */
  origin: string | null;
}

/** "config" comes from the React hook only (the client could not be created). */
export type ClientErrorKind = "close" | "token" | "socket" | "server" | "config";

export interface ClientError {
  kind: ClientErrorKind;
  /** True when the client stopped (state "error"); false for server `error` messages
   * and token refresh problems on a live connection. */
  fatal: boolean;
  /** A close code (kind "close"), a server error code (kind "server", e.g.
   * "history_disabled"), or null. */
  code: number | string | null;
  reason: string;
  /** What getToken() threw or rejected with. */
  error?: unknown;
  /** Kind "close" after maxReconnectAttempts: the attempts made. */
  attempts?: number;
  gaveUp?: boolean;
  /** Kind "token" on `token_expiring`: when the current token expires. */
  expiresAt?: string | null;
}

/** The second argument of onStateChange: `previous`, plus what the transition knows. */
export interface StateChangeInfo extends Partial<Omit<ClientError, "code">> {
  previous: ConnectionState;
  code?: number | string | null;
  /** "reconnecting": ms until the next attempt (0: now). */
  delay?: number;
  /** "reconnecting": consecutive failures so far. */
  attempt?: number;
  /** "reconnecting" at once with a new token after 4401/4403. */
  refresh?: boolean;
  /** "connected": the server's id for the connection. */
  connectionId?: string | null;
  /** "connected" after a reconnect. */
  reconnected?: boolean;
}

export interface ActionInfo {
  /** "push": live; "replay": missed while away; "snapshot": from `recentActions`. */
  source: "push" | "replay" | "snapshot";
}

/** Any parsed server message (onMessage gets them raw). */
export interface ServerMessage {
  type: string;
  timestamp?: string;
  [field: string]: unknown;
}

/** What the client needs of a WebSocket (the browser's, undici's, ws, ...). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
  removeEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** What the client needs of `fetch` (a POST to `<mount>/admission`). */
export type AdmissionFetch = (
  url: string,
  init?: any,
) => PromiseLike<{ readonly status: number; json(): Promise<unknown> }>;

export interface AdminStatsClientOptions<TStats = StatsSnapshot> {
  /** ws(s):// URL, or a path resolved against the page (http -> ws). */
  url: string | URL;
  /** Bearer token (sent as the `bearer.<token>` subprotocol). */
  token?: string | null;
  /** A fresh token: used when there is no `token`, on `token_expiring`, and once after a
   * 4401/4403 close. A falsy result is an error. */
  getToken?: (() => string | null | undefined | PromiseLike<string | null | undefined>) | null;
  /** Default ["stats", "notifications"]. */
  subscriptions?: Iterable<Subscription> | null;
  /** Backoff base (ms), default 1000. */
  reconnectInterval?: number;
  /** Backoff cap (ms), default 30000. */
  maxReconnectInterval?: number;
  /** Consecutive reconnects without reaching "connected" before state "error" (default
   * Infinity). */
  maxReconnectAttempts?: number;
  /** Send `?access_token=` instead of the subprotocol (it ends up in access logs). */
  tokenInUrl?: boolean;
  /** Default globalThis.WebSocket. */
  WebSocketImpl?: WebSocketConstructor;
  /** The latest `stats_update.data` (whole snapshots, also with deltas), once per frame. */
  onStats?: ((data: TStats) => void) | null;
  /** Each audit action once (de-duplicated by id). */
  onAction?: ((action: AuditAction, info: ActionInfo) => void) | null;
  onStateChange?: ((state: ConnectionState, info: StateChangeInfo) => void) | null;
  onError?: ((error: ClientError) => void) | null;
  /** Every parsed server message, raw. */
  onMessage?: ((message: ServerMessage) => void) | null;
  /** The reply to requestHistory(). */
  onHistory?: ((history: StatsHistory) => void) | null;
  /** The server refused the upgrade, or null once that ends. */
  onRefused?: ((refusal: Refusal | null) => void) | null;
  /** For `<mount>/admission` after a socket closed before opening; defaults to `fetch` in
   * a page (null: never ask). */
  fetchImpl?: AdmissionFetch | null;
  /** Default requestAnimationFrame (a zero-delay timer where there is none). */
  scheduleRender?: ((callback: () => void) => unknown) | null;
  cancelRender?: ((handle: any) => void) | null;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  /** Jitter source, in [0, 1). */
  random?: () => number;
  /** ms to reach "connected" (default 15000); 0 disables. */
  connectTimeout?: number;
  /** ms of silence before a connection is dropped; null (default): 2.5 x the server's
   * heartbeatInterval; 0 disables. */
  idleTimeout?: number | null;
  /** Audit ids remembered for de-duplication (default 1000). */
  dedupSize?: number;
  /** Connect from the constructor (default true). */
  autoConnect?: boolean;
  /** Ask for `stats_delta` patches (applied by the client: onStats gets whole snapshots). */
  deltas?: boolean;
}

export declare class AdminStatsClient<TStats = StatsSnapshot> {
  constructor(options: AdminStatsClientOptions<TStats>);
  /** The URL as given (resolved on each attempt). */
  readonly url: string;
  readonly state: ConnectionState;
  /** Reconnect attempts started since the client was created (token retries included). */
  readonly reconnects: number;
  /** The server's id for the current connection; null while not connected. */
  readonly connectionId: string | null;
  /** The newest audit id seen (a decimal string), or null: sent as `since` on reconnect. */
  readonly lastAuditId: string | null;
  /** Why the server refuses this client's upgrades, or null. */
  readonly refusal: Refusal | null;
  /** The latest `stats_update.data` received (not throttled), or null. */
  readonly stats: TStats | null;
  readonly subscriptions: Subscription[];
  /** The latest `history` reply, or null. */
  readonly history: StatsHistory | null;
  /** Ask for the snapshot history (`since`: epoch ms); false when not connected. */
  requestHistory(since?: number | null): boolean;
  /** Start connecting (done by the constructor unless autoConnect is false). Throws once
   * closed. */
  connect(): void;
  /** Connect now: skips a backoff wait, or starts again after "error". */
  reconnect(): void;
  /** Replace the token: sent in place when connected, reconnects after "error". */
  setToken(token: string | null | undefined): void;
  subscribe(names: Iterable<Subscription>): void;
  unsubscribe(names: Iterable<Subscription>): void;
  /** Close (1000 by default) and stop for good: state "disconnected", nothing fires after. */
  close(code?: number, reason?: string): void;
}

/** Reconnect delay with full jitter: uniform in [0, min(capMs, baseMs * 2 ** attempt)]. */
export declare function backoffDelay(
  attempt: number,
  options?: { baseMs?: number; capMs?: number; random?: () => number },
): number;

/** What to do after a close with `code`. */
export declare function closePolicy(
  code: number,
  options?: { reason?: string | null; refreshAvailable?: boolean },
): "stop" | "refresh" | "backoff";

/** A bounded set of recent audit ids: the oldest is forgotten first. */
export declare class Dedup {
  constructor(capacity?: number);
  readonly capacity: number;
  readonly size: number;
  /** True if `id` was added recently (and is still remembered). */
  has(id: string | number): boolean;
  /** Remember `id`; true if it is new, false if it is a duplicate. */
  add(id: string | number): boolean;
  clear(): void;
}

/** RFC 7386 MergePatch(target, patch): a new value; neither argument is modified. */
export declare function applyMergePatch(target: unknown, patch: unknown): unknown;

/** Order of audit ids (decimal strings of any length): negative, 0 or positive. */
export declare function compareAuditIds(a: string | number, b: string | number): number;

/** `url` as a ws:/wss: URL: relative URLs resolve against `base` (default: the page). */
export declare function resolveSocketUrl(url: string | URL, base?: string | URL | null): string;

/** The mount's `/admission` URL (http(s)) for a ws(s) endpoint URL; null if unparsable. */
export declare function admissionUrl(url: string | URL): string | null;

/** What a refused upgrade means, from `<mount>/admission`'s answer and the page's origin. */
export declare function describeRefusal(answer?: {
  status?: number | null;
  body?: unknown;
  origin?: string | null;
}): Refusal;
