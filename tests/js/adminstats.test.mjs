// Tests for asgi_adminstats/static/adminstats.js: `node --test tests/js/` (Node 20+, no
// dependencies). The WebSocket, timers, animation frames and jitter are all injected.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  AdminStatsClient,
  Dedup,
  PROTOCOL,
  backoffDelay,
  closePolicy,
  compareAuditIds,
  resolveSocketUrl,
} from "../../asgi_adminstats/static/adminstats.js";
import { URL_, fakeClient } from "./helpers/client.mjs";
import { FakeClock, makeFakeWebSocket, settle } from "./helpers/fakes.mjs";

function setup(options = {}) {
  const events = { states: [], stateInfo: [], stats: [], actions: [], sources: [], errors: [] };
  const { client, WS, clock, frames } = fakeClient({
    token: "tok-1",
    onStateChange: (state, info) => {
      events.states.push(state);
      events.stateInfo.push(info);
    },
    onStats: (data) => events.stats.push(data),
    onAction: (action, info) => {
      events.actions.push(String(action.id));
      events.sources.push(info.source);
    },
    onError: (error) => events.errors.push(error),
    ...options,
  });
  return { client, WS, clock, frames, events };
}

const action = (id, extra = {}) => ({
  id: String(id),
  action: "BAN_PLAYER",
  admin: "AdminUser",
  targetType: "PLAYER",
  timestamp: "2025-01-04T11:59:30Z",
  ...extra,
});

const statsMessage = (users, recent = []) => ({
  type: "stats_update",
  timestamp: "2025-01-04T12:00:00Z",
  data: { online: { users, players: 1, connections: 1 }, activity: { recentActions: recent } },
});

// --- pure helpers ---------------------------------------------------------------------

describe("backoffDelay", () => {
  test("full jitter stays within [0, min(cap, base * 2^attempt)] over many attempts", () => {
    const baseMs = 1000;
    const capMs = 30000;
    for (let attempt = 0; attempt < 64; attempt += 1) {
      const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
      assert.equal(backoffDelay(attempt, { baseMs, capMs, random: () => 0 }), 0);
      const high = backoffDelay(attempt, { baseMs, capMs, random: () => 0.999999 });
      assert.ok(high <= ceiling, `attempt ${attempt}: ${high} > ${ceiling}`);
      assert.ok(high >= ceiling * 0.999, `attempt ${attempt}: ${high} far below ${ceiling}`);
      for (let i = 0; i < 50; i += 1) {
        const d = backoffDelay(attempt, { baseMs, capMs });
        assert.ok(Number.isInteger(d) && d >= 0 && d <= ceiling, `attempt ${attempt}: ${d}`);
      }
    }
  });

  test("the ceiling doubles, then the cap holds", () => {
    const top = (attempt) => backoffDelay(attempt, { baseMs: 1000, capMs: 30000, random: () => 0.9999999 });
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(top), [999, 1999, 3999, 7999, 15999, 29999, 29999]);
  });

  test("odd inputs: negative/NaN attempts count as 0, random is clamped, an infinite cap fits setTimeout", () => {
    assert.ok(backoffDelay(-3, { baseMs: 100, capMs: 1000, random: () => 0.99 }) <= 100);
    assert.ok(backoffDelay(NaN, { baseMs: 100, capMs: 1000, random: () => 0.99 }) <= 100);
    assert.equal(backoffDelay(2, { baseMs: 100, capMs: 1000, random: () => 7 }), 400);
    assert.equal(backoffDelay(2, { baseMs: 100, capMs: 1000, random: () => -1 }), 0);
    assert.equal(backoffDelay(3, { baseMs: 0, capMs: 1000, random: () => 0.5 }), 0);
    const huge = backoffDelay(5000, { baseMs: 1000, capMs: Infinity, random: () => 0.9999 });
    assert.ok(huge > 0 && huge <= 2 ** 31 - 1);
  });
});

describe("closePolicy", () => {
  const table = [
    // code, refreshAvailable, reason, expected
    [4401, false, "unauthorized: invalid token", "stop"],
    [4401, true, "unauthorized: invalid token", "refresh"],
    [4401, true, "unauthorized: token expired", "refresh"],
    [4403, false, "forbidden: admin role required", "stop"],
    [4403, true, "forbidden: admin role required", "refresh"],
    [4401, false, "unauthorized: authorization server unavailable", "backoff"],
    [4401, true, "unauthorized: authorization server unavailable", "backoff"],
    [1013, false, "try again later: server full", "backoff"],
    [4429, false, "rate limited", "backoff"],
    [4008, false, "slow consumer", "backoff"],
    [1006, false, "", "backoff"],
    [1011, false, "internal error", "backoff"],
    [1001, false, "going away", "backoff"],
    [1012, false, "", "backoff"], // uvicorn's close on shutdown
    [1000, false, "normal closure", "backoff"],
    [4408, true, "timeout: no pong", "backoff"],
    [1009, false, "message too big", "backoff"],
  ];
  for (const [code, refreshAvailable, reason, expected] of table) {
    test(`${code} ${JSON.stringify(reason)} refreshAvailable=${refreshAvailable} -> ${expected}`, () => {
      assert.equal(closePolicy(code, { reason, refreshAvailable }), expected);
    });
  }

  test("without options an auth close stops", () => {
    assert.equal(closePolicy(4401), "stop");
    assert.equal(closePolicy(4403), "stop");
    assert.equal(closePolicy(1006), "backoff");
  });
});

describe("Dedup", () => {
  test("add() is true once per id; ids compare as strings", () => {
    const d = new Dedup(10);
    assert.equal(d.add("1"), true);
    assert.equal(d.add("1"), false);
    assert.equal(d.add(1), false);
    assert.equal(d.has(1), true);
    assert.equal(d.add("2"), true);
    assert.equal(d.size, 2);
  });

  test("bounded: the oldest id is forgotten first", () => {
    const d = new Dedup(3);
    for (const id of ["1", "2", "3", "4"]) d.add(id);
    assert.equal(d.size, 3);
    assert.equal(d.has("1"), false);
    assert.equal(d.has("4"), true);
    assert.equal(d.add("1"), true);
    assert.equal(d.has("2"), false);
  });

  test("capacity must be positive", () => {
    assert.throws(() => new Dedup(0), RangeError);
  });
});

test("compareAuditIds orders decimal ids numerically, any length", () => {
  assert.ok(compareAuditIds("9", "10") < 0);
  assert.ok(compareAuditIds("123456789012345678", "99") > 0);
  assert.equal(compareAuditIds("007", "7"), 0);
  assert.deepEqual(["10", "2", "33", "1"].sort(compareAuditIds), ["1", "2", "10", "33"]);
});

test("resolveSocketUrl maps page URLs to ws(s)", () => {
  assert.equal(resolveSocketUrl("/admin/ws", "https://example.test/admin"), "wss://example.test/admin/ws");
  assert.equal(resolveSocketUrl("/admin/ws", "http://localhost:8000/"), "ws://localhost:8000/admin/ws");
  assert.equal(resolveSocketUrl("ws://example.test/admin/ws", undefined), "ws://example.test/admin/ws");
});

// --- handshake ------------------------------------------------------------------------

describe("handshake", () => {
  test("the token travels in the subprotocol, never in the URL by default", () => {
    const { WS } = setup({ token: "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl" });
    assert.equal(WS.instances.length, 1);
    const ws = WS.last;
    assert.equal(ws.url, URL_);
    assert.ok(!ws.url.includes("eyJ"), ws.url);
    assert.ok(!ws.url.includes("access_token"), ws.url);
    assert.deepEqual(ws.protocols, [PROTOCOL, "bearer.eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"]);
  });

  test("tokenInUrl: ?access_token= and no bearer subprotocol", () => {
    const { WS } = setup({ tokenInUrl: true, url: "ws://example.test/admin/ws?x=1" });
    const ws = WS.last;
    const parsed = new URL(ws.url);
    assert.equal(parsed.searchParams.get("access_token"), "tok-1");
    assert.equal(parsed.searchParams.get("x"), "1");
    assert.deepEqual(ws.protocols, [PROTOCOL]);
  });

  test("no token and no getToken: only adminstats.v1 (cookie or first-message auth)", () => {
    const { WS } = setup({ token: null });
    assert.deepEqual(WS.last.protocols, [PROTOCOL]);
  });

  test("no token but getToken: the first connection waits for it", async () => {
    let calls = 0;
    const { WS, client } = setup({ token: null, getToken: async () => `fresh-${++calls}` });
    assert.equal(WS.instances.length, 0);
    assert.equal(client.state, "connecting");
    await settle();
    assert.equal(WS.instances.length, 1);
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.fresh-1"]);
  });

  test("a WebSocket constructor failure stops with an error that does not repeat the token", () => {
    class Throwing {
      constructor(url, protocols) {
        throw new SyntaxError(`The subprotocol '${protocols[1]}' is invalid.`);
      }
    }
    const { client, events } = setup({ WebSocketImpl: Throwing, token: "bad token" });
    assert.equal(client.state, "error");
    assert.equal(events.errors.length, 1);
    assert.equal(events.errors[0].fatal, true);
    assert.ok(!events.errors[0].reason.includes("bad token"), events.errors[0].reason);
  });

  test("autoConnect: false waits for connect()", () => {
    const { WS, client } = setup({ autoConnect: false });
    assert.equal(client.state, "disconnected");
    assert.equal(WS.instances.length, 0);
    client.connect();
    assert.equal(client.state, "connecting");
    assert.equal(WS.instances.length, 1);
  });

  test("url and a WebSocket implementation are required", () => {
    assert.throws(() => new AdminStatsClient({ WebSocketImpl: makeFakeWebSocket() }), TypeError);
    assert.throws(() => new AdminStatsClient({ url: URL_, WebSocketImpl: undefined }), TypeError);
  });
});

// --- states ---------------------------------------------------------------------------

describe("state transitions", () => {
  test("connecting -> connected -> reconnecting -> connected", () => {
    const { client, WS, clock, events } = setup();
    assert.equal(client.state, "connecting");
    WS.last.accept();
    assert.equal(client.state, "connected");
    assert.equal(client.connectionId, "conn-1");

    WS.last.serverClose(1006);
    assert.equal(client.state, "reconnecting");
    assert.equal(client.connectionId, null);
    assert.equal(events.stateInfo.at(-1).code, 1006);
    assert.equal(events.stateInfo.at(-1).delay, 500); // random 0.5 of the 1000 ms ceiling
    assert.deepEqual(clock.delays(), [500]);
    assert.equal(WS.instances.length, 1);

    clock.advance(499);
    assert.equal(WS.instances.length, 1);
    clock.advance(1);
    assert.equal(WS.instances.length, 2);
    assert.equal(client.reconnects, 1);
    assert.equal(client.state, "reconnecting");
    WS.last.accept();
    assert.equal(client.state, "connected");
    assert.equal(client.connectionId, "conn-2");
    assert.equal(events.stateInfo.at(-1).reconnected, true);
    assert.deepEqual(events.states, ["connecting", "connected", "reconnecting", "connected"]);
    assert.deepEqual(events.errors, []);
  });

  test("consecutive failures back off exponentially; success resets the count", () => {
    const { WS, clock, events } = setup({ random: () => 0.9999 });
    WS.last.accept();
    const delays = [];
    for (let i = 0; i < 7; i += 1) {
      WS.last.serverClose(1006);
      delays.push(events.stateInfo.at(-1).delay);
      clock.runNext();
    }
    assert.deepEqual(delays, [999, 1999, 3999, 7999, 15998, 29997, 29997]); // 0.9999 x 1 s, 2 s, ... 30 s
    WS.last.accept();
    WS.last.serverClose(1001, "going away");
    assert.equal(events.stateInfo.at(-1).delay, 999);
  });

  test("-> error after maxReconnectAttempts consecutive failures", () => {
    const { client, WS, clock, events } = setup({ maxReconnectAttempts: 2 });
    WS.last.accept();
    WS.last.serverClose(1006);
    clock.runNext();
    WS.last.serverClose(1006); // attempt 1 failed
    clock.runNext();
    WS.last.serverClose(1013, "try again later: server full"); // attempt 2 failed
    assert.equal(client.state, "error");
    assert.equal(WS.instances.length, 3);
    assert.equal(clock.pending, 0);
    assert.deepEqual(events.states, ["connecting", "connected", "reconnecting", "reconnecting", "error"]);
    assert.equal(events.errors.length, 1);
    assert.equal(events.errors[0].code, 1013);
    assert.equal(events.errors[0].reason, "try again later: server full");
    assert.equal(events.errors[0].gaveUp, true);
    assert.equal(events.errors[0].fatal, true);
  });

  test("maxReconnectAttempts: 0 gives up at the first close", () => {
    const { client, WS } = setup({ maxReconnectAttempts: 0 });
    WS.last.serverClose(1006);
    assert.equal(client.state, "error");
  });

  // What each server's shutdown looks like to a client (PROTOCOL.md, "Close codes"):
  // the component's 1001, uvicorn's 1012, hypercorn's 1011, granian's drop (1006, no close
  // frame); and 1013 from a server still starting. Each backs off and reconnects.
  test("server shutdown closes (1001, 1012, 1011, 1006, 1013) back off and reconnect", () => {
    for (const [code, reason] of [[1001, "going away"], [1012, ""], [1011, ""], [1006, ""], [1013, "try again later: server full"]]) {
      const { client, WS, clock, events } = setup({ random: () => 0.9999 });
      WS.last.accept();
      WS.last.serverClose(code, reason);
      assert.equal(client.state, "reconnecting", String(code));
      assert.deepEqual(clock.delays(), [999], String(code)); // the backoff, not at once
      clock.advance(998);
      assert.equal(WS.instances.length, 1, String(code));
      clock.advance(1);
      assert.equal(WS.instances.length, 2, String(code));
      WS.last.accept();
      assert.equal(client.state, "connected", String(code));
      assert.deepEqual(events.errors, [], String(code));
    }
  });

  test("a close event without a code (no close frame) counts as 1006 and backs off", () => {
    const { client, WS, clock, events } = setup();
    WS.last.accept();
    WS.last.readyState = 3;
    WS.last._dispatch("close", { type: "close", wasClean: false });
    assert.equal(client.state, "reconnecting");
    assert.equal(events.stateInfo.at(-1).code, 1006);
    assert.equal(clock.pending, 1);
    clock.runNext();
    assert.equal(WS.instances.length, 2);
  });

  test("1013, 4429 and 4008 back off and reconnect", () => {
    for (const [code, reason] of [[1013, "try again later: server full"], [4429, "rate limited"], [4008, "slow consumer"]]) {
      const { client, WS, clock, events } = setup();
      WS.last.accept();
      WS.last.serverClose(code, reason);
      assert.equal(client.state, "reconnecting", String(code));
      assert.equal(clock.pending, 1);
      clock.runNext();
      assert.equal(WS.instances.length, 2);
      assert.deepEqual(events.errors, []);
    }
  });

  test("4403 without getToken: stop, error, onError {code, reason}, no timers", () => {
    const { client, WS, clock, events } = setup();
    WS.last.open();
    WS.last.serverClose(4403, "forbidden: admin role required");
    assert.equal(client.state, "error");
    assert.equal(clock.pending, 0);
    assert.equal(WS.instances.length, 1);
    assert.equal(events.errors.length, 1);
    assert.equal(events.errors[0].code, 4403);
    assert.equal(events.errors[0].reason, "forbidden: admin role required");
    clock.advance(10 * 60 * 1000);
    assert.equal(WS.instances.length, 1);
  });

  test("4401 with getToken: one retry with a new token, then stop", async () => {
    const tokens = [];
    const { client, WS, clock, events } = setup({
      getToken: async () => {
        tokens.push(`new-${tokens.length + 1}`);
        return tokens.at(-1);
      },
    });
    WS.last.open();
    WS.last.serverClose(4401, "unauthorized: token expired");
    assert.equal(client.state, "reconnecting");
    assert.equal(events.stateInfo.at(-1).refresh, true);
    await settle();
    assert.deepEqual(tokens, ["new-1"]);
    assert.equal(WS.instances.length, 2);
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.new-1"]);

    WS.last.open();
    WS.last.serverClose(4401, "unauthorized: invalid token"); // the new one fails too
    await settle();
    assert.deepEqual(tokens, ["new-1"]); // not asked again for the same failure
    assert.equal(WS.instances.length, 2);
    assert.equal(client.state, "error");
    assert.equal(clock.pending, 0);
    assert.equal(events.errors.length, 1);
    assert.equal(events.errors[0].code, 4401);
    assert.equal(events.errors[0].reason, "unauthorized: invalid token");
  });

  test("4401 retry succeeds; a later 4401 may retry again", async () => {
    let n = 0;
    const { client, WS } = setup({ getToken: () => `new-${++n}` }); // sync getToken works too
    WS.last.accept();
    WS.last.serverClose(4401, "unauthorized: token expired");
    await settle();
    WS.last.accept();
    assert.equal(client.state, "connected");
    WS.last.serverClose(4401, "unauthorized: token expired");
    await settle();
    assert.equal(WS.instances.length, 3);
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.new-2"]);
  });

  test("4401 'authorization server unavailable' backs off instead of stopping", () => {
    const { client, WS, clock } = setup();
    WS.last.open();
    WS.last.serverClose(4401, "unauthorized: authorization server unavailable");
    assert.equal(client.state, "reconnecting");
    assert.equal(clock.pending, 1);
  });

  test("getToken failing during the retry stops with an error", async () => {
    const { client, WS, events } = setup({
      getToken: async () => {
        throw new Error("login expired");
      },
    });
    WS.last.serverClose(4401, "unauthorized: invalid token");
    await settle();
    assert.equal(client.state, "error");
    assert.equal(events.errors[0].kind, "token");
    assert.equal(events.errors[0].error.message, "login expired");
  });

  test("a silent connection is dropped by the watchdog (2.5 heartbeats)", () => {
    const { client, WS, clock } = setup();
    WS.last.accept({ heartbeatInterval: 30 });
    clock.advance(74_000);
    assert.equal(client.state, "connected");
    WS.last.receive({ type: "ping", timestamp: "…" }); // any message re-arms it
    clock.advance(74_000);
    assert.equal(client.state, "connected");
    clock.advance(1_000);
    assert.equal(client.state, "reconnecting");
    assert.deepEqual(WS.instances[0].closeCalls.map((c) => c.code), [1000]);
  });

  test("a connection that never says `connected` times out", () => {
    const { client, WS, clock } = setup({ connectTimeout: 5000 });
    WS.last.open();
    clock.advance(5000);
    assert.equal(client.state, "reconnecting");
    assert.equal(WS.instances[0].listenerCount(), 0);
  });

  test("reconnect() skips the backoff wait; after error it starts again", () => {
    const { client, WS, clock } = setup({ maxReconnectAttempts: 1 });
    WS.last.accept();
    WS.last.serverClose(1006);
    client.reconnect();
    assert.equal(WS.instances.length, 2);
    assert.equal(clock.pending, 1); // only the new socket's connect watchdog
    WS.last.serverClose(1006);
    assert.equal(client.state, "error");
    client.reconnect();
    assert.equal(client.state, "reconnecting");
    assert.equal(WS.instances.length, 3);
    WS.last.accept();
    assert.equal(client.state, "connected");
  });
});

// --- messages -------------------------------------------------------------------------

describe("messages", () => {
  test("ping is answered with pong", () => {
    const { WS } = setup();
    WS.last.accept();
    WS.last.receive({ type: "ping", timestamp: "2025-01-04T12:00:30Z" });
    assert.deepEqual(WS.last.sent, [{ type: "pong" }]);
  });

  test("token_expiring -> auth with getToken's token; the next reconnect uses it", async () => {
    const { client, WS, clock } = setup({ getToken: async () => "renewed" });
    WS.last.accept();
    WS.last.receive({ type: "token_expiring", expiresAt: "2025-01-04T12:05:00.000Z", timestamp: "…" });
    await settle();
    assert.deepEqual(WS.last.sent, [{ type: "auth", token: "renewed" }]);
    WS.last.serverClose(1006);
    clock.runNext();
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.renewed"]);
    assert.equal(client.state, "reconnecting");
  });

  test("token_expiring without getToken reports a non-fatal error and stays connected", () => {
    const { client, WS, events } = setup();
    WS.last.accept();
    WS.last.receive({ type: "token_expiring", expiresAt: "2025-01-04T12:05:00.000Z", timestamp: "…" });
    assert.equal(client.state, "connected");
    assert.equal(events.errors.length, 1);
    assert.equal(events.errors[0].fatal, false);
    assert.deepEqual(WS.last.sent, []);
  });

  test("setToken() while connected refreshes in place; a 4401 afterwards reconnects with it", () => {
    const { client, WS } = setup();
    WS.last.accept();
    client.setToken("tok-2");
    assert.deepEqual(WS.last.sent, [{ type: "auth", token: "tok-2" }]);
    WS.last.serverClose(4401, "unauthorized: token for another subject");
    assert.equal(client.state, "reconnecting");
    assert.equal(WS.instances.length, 2);
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.tok-2"]);
  });

  test("setToken() after an auth stop connects again with the new token", () => {
    const { client, WS } = setup();
    WS.last.serverClose(4401, "unauthorized: invalid token");
    assert.equal(client.state, "error");
    client.setToken("tok-2");
    assert.equal(WS.instances.length, 2);
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.tok-2"]);
  });

  test("after a reconnect: subscribe with since = the newest audit id seen", () => {
    const { client, WS, clock, frames } = setup();
    WS.last.accept();
    assert.deepEqual(WS.last.sent, []); // the first connection has nothing to ask for
    WS.last.receive(statsMessage(3, [action(5), action(4)]));
    WS.last.receive({ type: "audit_action", data: action(7), timestamp: "…" });
    frames.flush();
    assert.equal(client.lastAuditId, "7");
    WS.last.serverClose(1006);
    clock.runNext();
    WS.last.accept();
    assert.deepEqual(WS.last.sent, [
      { type: "subscribe", subscriptions: ["stats", "notifications"], since: "7" },
    ]);
  });

  test("lastAuditId is the largest id numerically and also comes from snapshots", () => {
    const { client, WS } = setup();
    WS.last.accept();
    WS.last.receive(statsMessage(1, [action(10), action(9)]));
    assert.equal(client.lastAuditId, "10");
    WS.last.receive({ type: "audit_action", data: action(8), timestamp: "…" }); // late, older
    assert.equal(client.lastAuditId, "10");
  });

  test("duplicate audit ids are dropped (pushes, replays, snapshots)", () => {
    const { WS, clock, events } = setup();
    WS.last.accept();
    WS.last.receive(statsMessage(1, [action(3), action(2)]));
    WS.last.receive({ type: "audit_action", data: action(4), timestamp: "…" });
    WS.last.receive({ type: "audit_action", data: action(4), timestamp: "…" });
    WS.last.receive(statsMessage(1, [action(4), action(3), action(2)]));
    WS.last.serverClose(1006);
    clock.runNext();
    WS.last.accept();
    WS.last.receive({ type: "audit_action", data: action(4, { replayed: true }), timestamp: "…" });
    WS.last.receive({ type: "audit_action", data: action(5, { replayed: true }), timestamp: "…" });
    WS.last.receive({ type: "audit_action", data: action(5), timestamp: "…" });
    assert.deepEqual(events.actions, ["2", "3", "4", "5"]);
    assert.deepEqual(events.sources, ["snapshot", "snapshot", "push", "replay"]);
  });

  test("render throttling: three snapshots before a frame -> onStats once, with the latest", () => {
    const { client, WS, frames, events } = setup();
    WS.last.accept();
    WS.last.receive(statsMessage(1));
    WS.last.receive(statsMessage(2));
    WS.last.receive(statsMessage(3));
    assert.equal(events.stats.length, 0);
    assert.equal(frames.requested, 1);
    assert.equal(client.stats.online.users, 3); // the unthrottled latest
    frames.flush();
    assert.equal(events.stats.length, 1);
    assert.equal(events.stats[0].online.users, 3);
    frames.flush();
    assert.equal(events.stats.length, 1);
    WS.last.receive(statsMessage(4));
    frames.flush();
    assert.deepEqual(events.stats.map((d) => d.online.users), [3, 4]);
  });

  test("without requestAnimationFrame the client coalesces on a zero-delay timer", () => {
    const seen = [];
    const { client, WS, clock } = fakeClient({ scheduleRender: undefined, onStats: (data) => seen.push(data.online.users) });
    WS.last.accept();
    WS.last.receive(statsMessage(1));
    WS.last.receive(statsMessage(2));
    clock.advance(0);
    assert.deepEqual(seen, [2]);
    client.close();
    assert.equal(clock.pending, 0);
  });

  test("custom subscriptions: extra server defaults are unsubscribed", () => {
    const { WS } = setup({ subscriptions: ["stats"] });
    WS.last.accept();
    assert.deepEqual(WS.last.sent, [{ type: "unsubscribe", subscriptions: ["notifications"] }]);
  });

  test("server error messages are reported, the connection stays", () => {
    const { client, WS, events } = setup();
    WS.last.accept();
    WS.last.receive({ type: "error", code: "bad_message", message: "invalid JSON", timestamp: "…" });
    assert.equal(client.state, "connected");
    assert.deepEqual(events.errors.map((e) => [e.kind, e.code, e.fatal]), [["server", "bad_message", false]]);
  });

  test("garbage, binary frames and unknown types are ignored", () => {
    const { client, WS, events } = setup();
    WS.last.accept();
    WS.last.receive("not json");
    WS.last.receive("[1,2]");
    WS.last.receive({ type: "something_new" });
    WS.last._dispatch("message", { data: new ArrayBuffer(4) });
    assert.equal(client.state, "connected");
    assert.deepEqual(events.errors, []);
  });

  test("a throwing callback does not break the client", () => {
    const original = console.error;
    const reported = [];
    console.error = (...args) => reported.push(args);
    try {
      const { client, WS } = setup({
        onAction: () => {
          throw new Error("boom");
        },
      });
      WS.last.accept();
      WS.last.receive({ type: "audit_action", data: action(1), timestamp: "…" });
      WS.last.receive({ type: "ping" });
      assert.deepEqual(WS.last.sent, [{ type: "pong" }]);
      assert.equal(client.lastAuditId, "1");
      assert.equal(reported.length, 1);
    } finally {
      console.error = original;
    }
  });
});

// --- close() --------------------------------------------------------------------------

describe("close()", () => {
  test("leaves no timers, frames or listeners, and nothing fires afterwards", async () => {
    let tokenCalls = 0;
    const { client, WS, clock, frames, events } = setup({
      getToken: async () => `t-${++tokenCalls}`,
    });
    WS.last.accept();
    WS.last.receive(statsMessage(1)); // a frame pending
    WS.last.receive({ type: "token_expiring", expiresAt: "…", timestamp: "…" }); // a token request pending
    const ws = WS.last;
    assert.ok(clock.pending > 0); // the idle watchdog
    assert.equal(frames.pending, 1);

    client.close();
    assert.equal(client.state, "disconnected");
    assert.deepEqual(events.states.at(-1), "disconnected");
    assert.equal(clock.pending, 0);
    assert.equal(frames.pending, 0);
    assert.equal(ws.listenerCount(), 0);
    assert.deepEqual(ws.closeCalls, [{ code: 1000, reason: "client closed" }]);

    const before = JSON.stringify(events);
    await settle(); // the token arrives: no auth frame, no callback
    ws.receive(statsMessage(2));
    ws.receive({ type: "audit_action", data: action(9), timestamp: "…" });
    ws.serverClose(1006);
    frames.flush();
    clock.advance(10 * 60 * 1000);
    assert.equal(JSON.stringify(events), before);
    assert.deepEqual(ws.sent, []);
    assert.equal(WS.instances.length, 1);
    assert.equal(clock.pending, 0);
  });

  test("during a backoff wait: the retry timer is cancelled", () => {
    const { client, WS, clock } = setup();
    WS.last.accept();
    WS.last.serverClose(1006);
    assert.equal(clock.pending, 1);
    client.close();
    assert.equal(clock.pending, 0);
    clock.advance(60_000);
    assert.equal(WS.instances.length, 1);
  });

  test("while getToken is pending: no socket is opened afterwards", async () => {
    const { client, WS } = setup({ token: null, getToken: async () => "late" });
    client.close();
    await settle();
    assert.equal(WS.instances.length, 0);
    assert.equal(client.state, "disconnected");
  });

  test("close() from inside a callback stops everything", () => {
    const WS = makeFakeWebSocket();
    const clock = new FakeClock();
    let client;
    const states = [];
    client = new AdminStatsClient({
      url: URL_,
      token: "t",
      WebSocketImpl: WS,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      scheduleRender: () => 0,
      onStateChange: (state) => {
        states.push(state);
        if (state === "reconnecting") client.close();
      },
    });
    WS.last.accept();
    WS.last.serverClose(1006);
    assert.equal(client.state, "disconnected");
    assert.equal(clock.pending, 0);
    assert.deepEqual(states, ["connecting", "connected", "reconnecting", "disconnected"]);
  });

  test("a closed client stays closed", () => {
    const { client } = setup();
    client.close();
    client.close();
    client.reconnect();
    client.setToken("x");
    assert.equal(client.state, "disconnected");
    assert.throws(() => client.connect(), /closed/);
  });
});
