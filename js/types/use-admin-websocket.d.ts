// Declarations for use-admin-websocket.js (asgi_adminstats/static/use-admin-websocket.js),
// written by hand from its header comment: keep them in step with it. No React types
// are imported, so the plain client needs none.

import type {
  AdminStatsClient,
  AdminStatsClientOptions,
  AuditAction,
  ClientError,
  ConnectionState,
  Refusal,
  StatsHistory,
  StatsSnapshot,
  Subscription,
  WebSocketConstructor,
} from "./adminstats.js";

/** The React the factory needs: the `react` module (or anything with these hooks). */
export interface ReactHooks {
  useState: (...args: any[]) => any;
  useEffect: (...args: any[]) => any;
  useRef: (...args: any[]) => any;
  useCallback: (...args: any[]) => any;
}

/** AdminStatsClient options the hook leaves to `clientOptions` (timers, onMessage, ...):
 * the callbacks, url and token are the hook's own. */
export type HookClientOptions<TStats = StatsSnapshot> = Omit<
  AdminStatsClientOptions<TStats>,
  | "url"
  | "token"
  | "getToken"
  | "onStats"
  | "onAction"
  | "onStateChange"
  | "onError"
  | "onHistory"
  | "onRefused"
>;

export interface UseAdminWebSocketOptions<TStats = StatsSnapshot> {
  /** "/admin/ws" or "wss://example.com/admin/ws"; none: no connection. */
  url?: string | null;
  /** false: no connection (e.g. until signed in). Default true. */
  enabled?: boolean;
  /** Async is fine; used on expiry and after 4401/4403. May be a new function on every
   * render (the latest one is called). */
  getToken?: () => string | null | undefined | PromiseLike<string | null | undefined>;
  /** A fixed token; a new value is sent on the open connection without reconnecting. */
  token?: string | null;
  /** Backoff base (ms), full jitter, capped at maxReconnectInterval. */
  reconnectInterval?: number;
  maxReconnectInterval?: number;
  /** Then status "error". */
  maxReconnectAttempts?: number;
  /** Default ["stats", "notifications"]. */
  subscriptions?: readonly Subscription[];
  tokenInUrl?: boolean;
  /** stats_delta patches on the wire; `stats` stays whole. */
  deltas?: boolean;
  /** Ask for the snapshot history on each connection. */
  history?: boolean;
  /** Length of `notifications` (default 50). */
  maxNotifications?: number;
  WebSocketImpl?: WebSocketConstructor;
  /** Anything else AdminStatsClient takes (timers, scheduleRender, onMessage, ...). */
  clientOptions?: HookClientOptions<TStats>;
}

export interface AdminWebSocketState<TStats = StatsSnapshot> {
  status: ConnectionState;
  /** status === "connected" */
  isConnected: boolean;
  /** The latest stats_update `data` (at most one re-render per animation frame). */
  stats: TStats | null;
  /** Recent audit actions, newest first, each once, at most `maxNotifications`. */
  notifications: AuditAction[];
  /** The error that stopped the client (cleared when a connection succeeds). */
  connectionError: ClientError | null;
  /** While the server refuses the upgrade (status stays "reconnecting"). */
  refusal: Refusal | null;
  /** The latest `history` reply (with `history: true`, asked on each connection). */
  history: StatsHistory | null;
  /** Ask for the history now (`since`: epoch ms); false when not connected. */
  requestHistory: (since?: number | null) => boolean;
  /** Try again now (after "error", or to skip a backoff wait). */
  reconnect: () => void;
}

/** The hook: `TStats` types `stats` for hosts with their own collectors. */
export type UseAdminWebSocket = <TStats = StatsSnapshot>(
  options?: UseAdminWebSocketOptions<TStats>,
) => AdminWebSocketState<TStats>;

export interface CreateUseAdminWebSocketOptions {
  /** Replaces AdminStatsClient (tests, wrappers). */
  Client?: new (options: AdminStatsClientOptions<any>) => AdminStatsClient<any>;
}

/** Build the hook for a given React (`import * as React from "react"`). */
export declare function createUseAdminWebSocket(
  React: ReactHooks,
  options?: CreateUseAdminWebSocketOptions,
): UseAdminWebSocket;

/** The hook over `globalThis.React` (a UMD build); throws when there is none. */
export declare function useAdminWebSocket<TStats = StatsSnapshot>(
  options?: UseAdminWebSocketOptions<TStats>,
): AdminWebSocketState<TStats>;

export default useAdminWebSocket;
