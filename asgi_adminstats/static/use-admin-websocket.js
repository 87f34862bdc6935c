// use-admin-websocket.js: the React hook of the seed document, over AdminStatsClient.
//
// No build step and no React import at module load: React may come from a bundler, an
// import map or a <script> tag, so you hand it over.
//
// With React from your bundler / import map:
//   import * as React from "react";
//   import { createUseAdminWebSocket } from "/admin/ws/use-admin-websocket.js";
//   const useAdminWebSocket = createUseAdminWebSocket(React);
//
// With React as a global (UMD build loaded before this module):
//   import { useAdminWebSocket } from "/admin/ws/use-admin-websocket.js";
//
// Then, in a component:
//   function AdminDashboard() {
//     const { status, isConnected, stats, notifications, connectionError, reconnect } =
//       useAdminWebSocket({
//         url: "/admin/ws",            // or "wss://example.com/admin/ws"
//         enabled: true,               // false: no connection (e.g. until signed in)
//         getToken: () => auth.freshToken(), // async is fine; used on expiry and after 4401/4403
//         // token: "...",             // or a fixed token; a new value is sent in place
//         reconnectInterval: 1000,     // backoff base (ms), full jitter, capped
//         maxReconnectAttempts: 10,    // then status "error"
//         deltas: true,                // stats_delta patches on the wire; `stats` stays whole
//         history: true,               // ask for the snapshot history on each connection
//       });
//     return <div>{isConnected ? "Live" : status} · users {stats?.online?.users ?? 0}</div>;
//   }
//
// Returns:
//   status           "connecting" | "connected" | "reconnecting" | "disconnected" | "error"
//   isConnected      status === "connected"
//   stats            the latest stats_update `data` (at most one re-render per animation frame)
//   notifications    recent audit actions, newest first, at most `maxNotifications` (50),
//                    each once (de-duplicated by id; snapshot history, live pushes, replays)
//   connectionError  null, or {kind, code, reason, ...} from the error that stopped the
//                    client (cleared when a connection succeeds)
//   refusal          null, or {reason, hint, status, origin} while the server refuses the
//                    upgrade (e.g. reason "origin": this page's origin is not allowed);
//                    status stays "reconnecting" (with backoff) meanwhile
//   history          null, or the latest `history` reply {interval, times, series, timestamp}
//                    (PROTOCOL.md): asked for on each connection with `history: true`
//   requestHistory(since?)  ask for it now (false when not connected)
//   reconnect()      try again now (after "error", or to skip a backoff wait)
//
// The client is created when the component mounts (and `enabled` and `url` are set) and
// closed on unmount or when url, enabled, subscriptions or the reconnect options change.
// A changed `token` is sent on the open connection ({"type": "auth"}) without reconnecting;
// `getToken` may be a new function on every render (the latest one is called).

import { AdminStatsClient, compareAuditIds } from "./adminstats.js";

const DEFAULT_MAX_NOTIFICATIONS = 50;

function addNotification(list, action, limit) {
  const id = action.id === undefined || action.id === null ? null : String(action.id);
  if (id !== null && list.some((a) => String(a.id) === id)) return list;
  const next = [action, ...list];
  // Newest first by id (replays and snapshot history may arrive out of order).
  next.sort((a, b) => compareAuditIds(b.id ?? "", a.id ?? ""));
  return next.length > limit ? next.slice(0, limit) : next;
}

/**
 * Build the hook for a given React (anything with useState, useEffect, useRef, useCallback).
 * `Client` is replaceable for tests and wrappers.
 */
export function createUseAdminWebSocket(React, { Client = AdminStatsClient } = {}) {
  if (!React || typeof React.useState !== "function" || typeof React.useEffect !== "function") {
    throw new TypeError("createUseAdminWebSocket(React): pass the React module (useState, useEffect, useRef, useCallback)");
  }
  const { useState, useEffect, useRef, useCallback } = React;

  return function useAdminWebSocket(options = {}) {
    const {
      url,
      enabled = true,
      reconnectInterval,
      maxReconnectInterval,
      maxReconnectAttempts,
      getToken,
      token,
      subscriptions,
      tokenInUrl,
      deltas,
      history: wantHistory = false,
      maxNotifications = DEFAULT_MAX_NOTIFICATIONS,
      WebSocketImpl,
      clientOptions, // anything else AdminStatsClient takes (timers, scheduleRender, ...)
    } = options;
    const active = Boolean(enabled && url);

    const [status, setStatus] = useState(active ? "connecting" : "disconnected");
    const [stats, setStats] = useState(null);
    const [notifications, setNotifications] = useState([]);
    const [connectionError, setConnectionError] = useState(null);
    const [refusal, setRefusal] = useState(null);
    const [history, setHistory] = useState(null);
    const clientRef = useRef(null);
    // Latest values without re-creating the client when they change identity.
    const getTokenRef = useRef(getToken);
    getTokenRef.current = getToken;
    const tokenRef = useRef(token);
    tokenRef.current = token;
    const limitRef = useRef(maxNotifications);
    limitRef.current = maxNotifications;
    const extraRef = useRef(clientOptions);
    extraRef.current = clientOptions;
    const historyRef = useRef(wantHistory);
    historyRef.current = wantHistory;

    const hasGetToken = typeof getToken === "function";
    const subscriptionKey = subscriptions ? [...subscriptions].join(",") : "";

    useEffect(() => {
      if (!active) {
        setStatus("disconnected");
        return undefined;
      }
      setConnectionError(null);
      setRefusal(null);
      let live = true; // callbacks of a client being torn down must not touch state
      const config = {
        ...(extraRef.current ?? {}),
        url,
        token: tokenRef.current ?? null,
        onStateChange: (state) => {
          if (!live) return;
          setStatus(state);
          if (state === "connected") setConnectionError(null);
          // Each connection: a reconnect's reply covers the gap too (the latest replaces).
          if (state === "connected" && historyRef.current) client?.requestHistory();
        },
        onHistory: (reply) => {
          if (live) setHistory(reply);
        },
        onStats: (data) => {
          if (live) setStats(data);
        },
        onAction: (action) => {
          if (live) setNotifications((list) => addNotification(list, action, limitRef.current));
        },
        onError: (error) => {
          if (live && error.fatal) setConnectionError(error);
        },
        onRefused: (why) => {
          if (live) setRefusal(why);
        },
      };
      if (hasGetToken) config.getToken = () => getTokenRef.current();
      if (reconnectInterval !== undefined) config.reconnectInterval = reconnectInterval;
      if (maxReconnectInterval !== undefined) config.maxReconnectInterval = maxReconnectInterval;
      if (maxReconnectAttempts !== undefined) config.maxReconnectAttempts = maxReconnectAttempts;
      if (subscriptionKey) config.subscriptions = subscriptionKey.split(",");
      if (tokenInUrl !== undefined) config.tokenInUrl = tokenInUrl;
      if (deltas !== undefined) config.deltas = deltas;
      if (WebSocketImpl !== undefined) config.WebSocketImpl = WebSocketImpl;

      let client;
      try {
        client = new Client(config);
      } catch (error) {
        setStatus("error");
        setConnectionError({ kind: "config", fatal: true, code: null, reason: String(error?.message ?? error) });
        return undefined;
      }
      clientRef.current = client;
      return () => {
        live = false;
        if (clientRef.current === client) clientRef.current = null;
        client.close();
      };
    }, [active, url, hasGetToken, reconnectInterval, maxReconnectInterval, maxReconnectAttempts,
        subscriptionKey, tokenInUrl, deltas, WebSocketImpl]);

    // A new token goes to the running client (in place when connected).
    useEffect(() => {
      if (token && clientRef.current) clientRef.current.setToken(token);
    }, [token]);

    const reconnect = useCallback(() => {
      if (clientRef.current) clientRef.current.reconnect();
    }, []);

    const requestHistory = useCallback(
      (since) => (clientRef.current ? clientRef.current.requestHistory(since) : false),
      [],
    );

    return {
      status,
      isConnected: status === "connected",
      stats,
      notifications,
      connectionError,
      refusal,
      reconnect,
      history,
      requestHistory,
    };
  };
}

let cachedReact = null;
let cachedHook = null;

/**
 * The hook over `globalThis.React` (a UMD build, or `globalThis.React = React` once at
 * start-up). Throws when there is none: use createUseAdminWebSocket(React) instead.
 */
export function useAdminWebSocket(options) {
  const React = globalThis.React;
  if (!React || typeof React.useState !== "function") {
    throw new Error(
      "useAdminWebSocket: globalThis.React is not set. Load React first (UMD build), set " +
        "globalThis.React = React, or build the hook with createUseAdminWebSocket(React).",
    );
  }
  if (React !== cachedReact) {
    cachedHook = createUseAdminWebSocket(React);
    cachedReact = React;
  }
  return cachedHook(options);
}

export default useAdminWebSocket;
