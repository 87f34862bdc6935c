// Tests for asgi_adminstats/static/use-admin-websocket.js over a tiny fake React
// (tests/js/helpers/fakes.mjs): `node --test tests/js/`.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { AdminStatsClient } from "../../asgi_adminstats/static/adminstats.js";
import {
  createUseAdminWebSocket,
  useAdminWebSocket as globalHook,
} from "../../asgi_adminstats/static/use-admin-websocket.js";
import { makeFakes } from "./helpers/client.mjs";
import { FakeClock, createFakeReact, makeFakeWebSocket, settle } from "./helpers/fakes.mjs";

function setup({ Client } = {}) {
  const { React, render } = createFakeReact();
  const { WS, clock, frames, clientOptions } = makeFakes();
  const created = [];
  class CountingClient extends (Client ?? AdminStatsClient) {
    constructor(options) {
      super(options);
      created.push(this);
    }
  }
  const useAdminWebSocket = createUseAdminWebSocket(React, { Client: CountingClient });
  // The "component": renders the hook with its props and returns what the hook returns.
  const Dashboard = (props) => useAdminWebSocket({ WebSocketImpl: WS, clientOptions, ...props });
  const mount = (props) => render(Dashboard, props);
  return { mount, WS, clock, frames, created };
}

const stats = (users, recent = []) => ({
  type: "stats_update",
  timestamp: "2025-01-04T12:00:00Z",
  data: { online: { users, players: 2, connections: 1 }, activity: { recentActions: recent } },
});

const action = (id) => ({ id: String(id), action: "BAN_PLAYER", admin: "A", targetType: "PLAYER", timestamp: "…" });

describe("useAdminWebSocket", () => {
  test("creates one client and exposes status, isConnected, stats and notifications", () => {
    const { mount, WS, frames, created } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok" });
    assert.equal(created.length, 1);
    assert.equal(WS.instances.length, 1);
    assert.deepEqual(WS.last.protocols, ["adminstats.v1", "bearer.tok"]);
    assert.equal(root.output.status, "connecting");
    assert.equal(root.output.isConnected, false);
    assert.equal(root.output.stats, null);
    assert.deepEqual(root.output.notifications, []);
    assert.equal(root.output.connectionError, null);

    WS.last.accept();
    assert.equal(root.output.status, "connected");
    assert.equal(root.output.isConnected, true);

    WS.last.receive(stats(7, [action(2), action(1)]));
    WS.last.receive(stats(8, [action(2), action(1)]));
    frames.flush();
    assert.equal(root.output.stats.online.users, 8);
    WS.last.receive({ type: "audit_action", data: action(3), timestamp: "…" });
    WS.last.receive({ type: "audit_action", data: action(3), timestamp: "…" });
    assert.deepEqual(root.output.notifications.map((a) => a.id), ["3", "2", "1"]);

    // Re-rendering with the same props keeps the client.
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok" });
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok" });
    assert.equal(created.length, 1);
    assert.equal(WS.instances.length, 1);
    assert.equal(typeof root.output.reconnect, "function");
    root.unmount();
  });

  test("closes the client on unmount: no timers, no frames, no listeners", () => {
    const { mount, WS, clock, frames, created } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok" });
    WS.last.accept();
    WS.last.receive(stats(1));
    const renders = root.renders;
    root.unmount();
    assert.equal(created[0].state, "disconnected");
    assert.deepEqual(WS.last.closeCalls.map((c) => c.code), [1000]);
    assert.equal(WS.last.listenerCount(), 0);
    assert.equal(clock.pending, 0);
    assert.equal(frames.pending, 0);
    WS.last.receive(stats(2));
    frames.flush();
    assert.equal(root.renders, renders);
  });

  test("notifications are bounded and newest first", () => {
    const { mount, WS } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok", maxNotifications: 3 });
    WS.last.accept();
    for (const id of [1, 2, 3, 4, 5]) WS.last.receive({ type: "audit_action", data: action(id), timestamp: "…" });
    assert.deepEqual(root.output.notifications.map((a) => a.id), ["5", "4", "3"]);
    root.unmount();
  });

  test("a changed url closes the old client and opens a new one", () => {
    const { mount, WS, created } = setup();
    const root = mount({ url: "ws://a.test/admin/ws", token: "tok" });
    WS.last.accept();
    root.rerender({ url: "ws://b.test/admin/ws", token: "tok" });
    assert.equal(created.length, 2);
    assert.equal(created[0].state, "disconnected");
    assert.equal(WS.last.url, "ws://b.test/admin/ws");
    assert.equal(root.output.status, "connecting");
    root.unmount();
    assert.equal(created[1].state, "disconnected");
  });

  test("enabled: false -> no client; enabling connects, disabling closes", () => {
    const { mount, WS, created } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok", enabled: false });
    assert.equal(created.length, 0);
    assert.equal(root.output.status, "disconnected");
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok", enabled: true });
    assert.equal(created.length, 1);
    WS.last.accept();
    assert.equal(root.output.isConnected, true);
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok", enabled: false });
    assert.equal(created[0].state, "disconnected");
    assert.equal(root.output.status, "disconnected");
    assert.equal(root.output.isConnected, false);
    root.unmount();
  });

  test("an auth stop sets connectionError and status 'error'; a new token reconnects", () => {
    const { mount, WS } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok" });
    WS.last.serverClose(4403, "forbidden: admin role required");
    assert.equal(root.output.status, "error");
    assert.equal(root.output.connectionError.code, 4403);
    assert.equal(root.output.connectionError.reason, "forbidden: admin role required");
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok-2" });
    assert.equal(WS.instances.length, 2);
    assert.deepEqual(WS.last.protocols, ["adminstats.v1", "bearer.tok-2"]);
    WS.last.accept();
    assert.equal(root.output.status, "connected");
    assert.equal(root.output.connectionError, null);
    root.unmount();
  });

  test("a new token while connected is sent in place, without reconnecting", () => {
    const { mount, WS, created } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok" });
    WS.last.accept();
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok-2" });
    assert.equal(created.length, 1);
    assert.deepEqual(WS.last.sent, [{ type: "auth", token: "tok-2" }]);
    root.unmount();
  });

  test("getToken: the latest function is called (e.g. on token_expiring)", async () => {
    const { mount, WS, created } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok", getToken: async () => "old" });
    WS.last.accept();
    root.rerender({ url: "ws://example.test/admin/ws", token: "tok", getToken: async () => "newest" });
    assert.equal(created.length, 1);
    WS.last.receive({ type: "token_expiring", expiresAt: "…", timestamp: "…" });
    await settle();
    assert.deepEqual(WS.last.sent, [{ type: "auth", token: "newest" }]);
    root.unmount();
  });

  test("a server's shutdown close (1001, 1012, 1011, 1006, 1013) -> reconnecting after the backoff", () => {
    for (const code of [1001, 1012, 1011, 1006, 1013]) {
      const { mount, WS, clock } = setup();
      const root = mount({ url: "ws://example.test/admin/ws", token: "tok" });
      WS.last.accept();
      WS.last.serverClose(code);
      assert.equal(root.output.status, "reconnecting", String(code));
      assert.equal(clock.pending, 1, String(code)); // the backoff timer
      assert.equal(WS.instances.length, 1, String(code));
      clock.runNext();
      assert.equal(WS.instances.length, 2, String(code));
      WS.last.accept();
      assert.equal(root.output.status, "connected", String(code));
      root.unmount();
    }
  });

  test("reconnecting after a drop is reflected in status", () => {
    const { mount, WS, clock } = setup();
    const root = mount({ url: "ws://example.test/admin/ws", token: "tok", maxReconnectAttempts: 3 });
    WS.last.accept();
    WS.last.serverClose(1006);
    assert.equal(root.output.status, "reconnecting");
    assert.equal(root.output.isConnected, false);
    clock.runNext();
    WS.last.accept();
    assert.equal(root.output.status, "connected");
    root.unmount();
    assert.equal(clock.pending, 0);
  });
});

describe("useAdminWebSocket over globalThis.React", () => {
  afterEach(() => {
    delete globalThis.React;
  });

  test("throws a clear error without globalThis.React", () => {
    delete globalThis.React;
    assert.throws(() => globalHook({ url: "ws://x" }), /globalThis\.React is not set/);
  });

  test("works with globalThis.React", () => {
    const { React, render } = createFakeReact();
    globalThis.React = React;
    const WS = makeFakeWebSocket();
    const clock = new FakeClock();
    const root = render(() =>
      globalHook({
        url: "ws://example.test/admin/ws",
        token: "tok",
        WebSocketImpl: WS,
        clientOptions: { setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, scheduleRender: () => 0 },
      }),
    );
    assert.equal(WS.instances.length, 1);
    WS.last.accept();
    assert.equal(root.output.isConnected, true);
    root.unmount();
    assert.equal(clock.pending, 0);
  });

  test("createUseAdminWebSocket rejects something that is not React", () => {
    assert.throws(() => createUseAdminWebSocket({}), TypeError);
  });
});
