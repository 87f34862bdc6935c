// The declarations as a user meets them: `tsc --noEmit -p tsconfig.json` (js/ci.sh) checks
// this file against dist/*.d.ts through package.json's `exports` (the package refers to
// itself by name). Each `@ts-expect-error` is misuse that must stay an error: if the
// declarations loosened, tsc would report the directive as unused.

import * as React from "react";

import {
  AdminStatsClient,
  AUTH_CLOSE_CODES,
  AUTH_SERVER_UNAVAILABLE,
  admissionUrl,
  applyMergePatch,
  backoffDelay,
  closePolicy,
  compareAuditIds,
  DELTA_PROTOCOL,
  Dedup,
  describeRefusal,
  PROTOCOL,
  RETRY_LATER_CLOSE_CODES,
  resolveSocketUrl,
  STATES,
  type AuditAction,
  type ClientError,
  type ConnectionState,
  type Refusal,
  type StatsHistory,
  type StatsSnapshot,
} from "asgi-adminstats";
import useDefault, {
  type AdminWebSocketState,
  useAdminWebSocket,
  createUseAdminWebSocket as fromReactEntry,
  AdminStatsClient as ClientFromReactEntry,
} from "asgi-adminstats/react";
import {
  createUseAdminWebSocket,
  useAdminWebSocket as globalReactHook,
} from "asgi-adminstats/use-admin-websocket";

// --- the client ---------------------------------------------------------------------

const protocols: string[] = [PROTOCOL, DELTA_PROTOCOL];
const connected: ConnectionState = STATES.CONNECTED;
const codes: readonly number[] = [...AUTH_CLOSE_CODES, ...RETRY_LATER_CLOSE_CODES];
const unavailable: string = AUTH_SERVER_UNAVAILABLE;

const client = new AdminStatsClient({
  url: "/admin/ws",
  getToken: async () => "token",
  subscriptions: ["stats", "notifications"],
  deltas: true,
  WebSocketImpl: WebSocket, // the DOM's WebSocket fits WebSocketConstructor
  fetchImpl: fetch, // and the DOM's fetch fits AdmissionFetch
  setTimeout: (cb, ms) => window.setTimeout(cb, ms),
  clearTimeout: (handle) => window.clearTimeout(handle),
  scheduleRender: requestAnimationFrame,
  cancelRender: cancelAnimationFrame,
  onStats: (data) => {
    const users: number | null | undefined = data.online?.users;
    const latency = data.system?.database?.latency;
    const extra: unknown = data.myCollector; // a host's collector: unknown until typed
    void [users, latency, extra];
  },
  onAction: (action, { source }) => {
    const id: string = action.id;
    const kind: "push" | "replay" | "snapshot" = source;
    void [id, kind];
  },
  onStateChange: (state, info) => {
    if (state === "reconnecting") void [info.previous, info.delay, info.attempt];
  },
  onError: ({ kind, fatal, code, reason }) => void [kind, fatal, code, reason],
  onHistory: ({ times, series }) => void series["online.users"]?.[times.length - 1],
  onRefused: (refusal) => void refusal?.hint,
  onMessage: (message) => void message.type,
});
const state: ConnectionState = client.state;
const stats: StatsSnapshot | null = client.stats;
const history: StatsHistory | null = client.history;
const refusal: Refusal | null = client.refusal;
const sent: boolean = client.requestHistory(Date.now() - 60_000);
client.subscribe(["notifications"]);
client.unsubscribe(new Set(["stats"] as const));
client.setToken("new-token");
client.reconnect();
client.close(1000, "done");
void [protocols, connected, codes, unavailable, state, stats, history, refusal, sent];
void [client.reconnects, client.connectionId, client.lastAuditId, client.subscriptions, client.url];

// A host's own collectors: the stats type is the host's.
interface GameStats extends StatsSnapshot {
  game: { matches: number };
}
new AdminStatsClient<GameStats>({
  url: "wss://example.com/admin/ws",
  token: "t",
  autoConnect: false,
  onStats: (data) => void data.game.matches.toFixed(),
});

// The helpers.
const delay: number = backoffDelay(3, { baseMs: 500, capMs: 10_000, random: Math.random });
const policy: "stop" | "refresh" | "backoff" = closePolicy(4401, { reason: "", refreshAvailable: true });
const dedup = new Dedup(10);
const fresh: boolean = dedup.add("1") && dedup.has(2);
dedup.clear();
const merged: unknown = applyMergePatch({ a: 1 }, { a: null });
const order: number = compareAuditIds("10", 9);
const socketUrl: string = resolveSocketUrl("/admin/ws", "https://example.com/");
const admission: string | null = admissionUrl(new URL("wss://example.com/admin/ws"));
const why: Refusal = describeRefusal({ status: 403, body: { allowed: false }, origin: null });
const reason: "origin" | "rate" | "upgrade" | "unknown" = why.reason;
void [delay, policy, fresh, dedup.size, dedup.capacity, merged, order, socketUrl, admission, reason];

// @ts-expect-error: `url` is required
new AdminStatsClient({ token: "t" });
// @ts-expect-error: not a subscription the server knows
new AdminStatsClient({ url: "/admin/ws", subscriptions: ["everything"] });
// @ts-expect-error: the state is one of five strings
const badState: ConnectionState = "open";
// @ts-expect-error: stats may be null
client.stats.online;
// @ts-expect-error: a close code is a number
closePolicy("4401");
void badState;

// --- the React hook ---------------------------------------------------------------

const useFromFactory = createUseAdminWebSocket(React); // the `react` module fits ReactHooks
const sameFactory: typeof createUseAdminWebSocket = fromReactEntry;
const sameClient: typeof AdminStatsClient = ClientFromReactEntry;
void [sameFactory, sameClient, useDefault, globalReactHook];

export function Dashboard({ token }: { token: string }): React.ReactElement {
  const live: AdminWebSocketState = useAdminWebSocket({
    url: "/admin/ws",
    enabled: token !== "",
    getToken: () => Promise.resolve(token),
    reconnectInterval: 1000,
    maxReconnectAttempts: 10,
    deltas: true,
    history: true,
    subscriptions: ["stats"],
    maxNotifications: 20,
    clientOptions: { connectTimeout: 5000, onMessage: (m) => void m.type },
  });
  const { status, isConnected, stats, notifications, connectionError, refusal, reconnect } = live;
  const users: number = stats?.online?.users ?? 0;
  const latest: AuditAction | undefined = notifications[0];
  const error: ClientError | null = connectionError;
  const asked: boolean = live.requestHistory();
  const points: number = live.history?.times.length ?? 0;
  const game = useFromFactory<GameStats>({ url: "/admin/ws", token });
  const matches: number | undefined = game.stats?.game.matches;
  void [latest, error, asked, points, matches, refusal];

  // @ts-expect-error: the hook owns the callbacks (its state comes from them)
  useAdminWebSocket({ url: "/admin/ws", clientOptions: { onStats: () => {} } });
  // @ts-expect-error: `enabled` is a boolean
  useAdminWebSocket({ url: "/admin/ws", enabled: "yes" });
  // @ts-expect-error: the factory wants React's hooks
  createUseAdminWebSocket({});

  return React.createElement(
    "div",
    { onClick: reconnect },
    isConnected ? `Live · users ${users}` : status,
  );
}
