// Delta updates in the browser client and the React hook (`node --test tests/js/`): the
// `adminstats.delta` offer, whole snapshots out of `stats_delta` patches, and the resync
// (one `subscribe` to stats) when a patch's base is not the snapshot held.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DELTA_PROTOCOL, PROTOCOL, applyMergePatch } from "../../asgi_adminstats/static/adminstats.js";
import { fakeClient, mountHook } from "./helpers/client.mjs";

function setup(options = {}) {
  const stats = [];
  const { client, WS, clock, frames } = fakeClient({ onStats: (data) => stats.push(data), ...options });
  // Every snapshot shown: one animation frame per message.
  const receive = (message) => {
    WS.last.receive(message);
    frames.flush();
  };
  return { client, WS, clock, stats, receive };
}

const T = "2025-01-04T12:00:00.000Z";
const full = (seq, data) => ({ type: "stats_update", seq, data, timestamp: T });
const delta = (seq, base, data) => ({ type: "stats_delta", seq, base, data, timestamp: T });
const resyncs = (ws) => ws.sent.filter((m) => m.type === "subscribe");

describe("applyMergePatch (RFC 7386)", () => {
  test("the RFC's examples, without modifying its arguments", () => {
    const target = { a: "b", c: { d: "e", f: "g" } };
    const patch = { a: "z", c: { f: null } };
    assert.deepEqual(applyMergePatch(target, patch), { a: "z", c: { d: "e" } });
    assert.deepEqual(target, { a: "b", c: { d: "e", f: "g" } });
    assert.deepEqual(applyMergePatch({ a: [1, 2] }, { a: [3, null] }), { a: [3, null] });
    assert.deepEqual(applyMergePatch({ a: "foo" }, null), null);
    assert.deepEqual(applyMergePatch({ e: null }, { a: 1 }), { e: null, a: 1 });
    assert.deepEqual(applyMergePatch([1], { a: { bb: { ccc: null } } }), { a: { bb: {} } });
  });

  test("a __proto__ key is a key, never the prototype", () => {
    const merged = applyMergePatch({}, JSON.parse('{"__proto__": {"polluted": 1}}'));
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.equal({}.polluted, undefined);
    assert.deepEqual(Object.keys(merged), ["__proto__"]);
  });
});

describe("AdminStatsClient deltas", () => {
  test("off by default: no offer, and a patch is never applied", () => {
    const { WS, stats, receive } = setup();
    assert.deepEqual(WS.last.protocols, [PROTOCOL, "bearer.tok"]);
    WS.last.accept({ deltas: true }); // a confused server: still not asked for
    receive(full(1, { a: 1 }));
    receive(delta(2, 1, { a: 2 }));
    assert.deepEqual(stats, [{ a: 1 }]);
    assert.deepEqual(WS.last.sent, []);
  });

  test("offered in the handshake; deltas applied; onStats gets whole snapshots", () => {
    const { client, WS, stats, receive } = setup({ deltas: true });
    assert.deepEqual(WS.last.protocols, [PROTOCOL, DELTA_PROTOCOL, "bearer.tok"]);
    WS.last.accept({ deltas: true });
    receive(full(1, { online: { users: 1, players: 2 }, totals: { players: 9 } }));
    receive(delta(2, 1, { online: { users: 3 } }));
    stats[1].online.users = -1; // the caller's copy: the held snapshot stays right
    receive(delta(3, 2, { online: { players: 5 }, totals: null }));
    assert.deepEqual(stats, [
      { online: { users: 1, players: 2 }, totals: { players: 9 } },
      { online: { users: -1, players: 2 }, totals: { players: 9 } },
      { online: { users: 3, players: 5 } },
    ]);
    assert.deepEqual(client.stats, { online: { users: 3, players: 5 } });
    assert.deepEqual(WS.last.sent, []);
  });

  test("a bad base: nothing shown, one resync, then patches again after the full snapshot", () => {
    const { WS, stats, receive } = setup({ deltas: true, subscriptions: ["stats"] });
    WS.last.accept({ deltas: true, subscriptions: ["stats"] });
    receive(full(1, { a: 1 }));
    receive(delta(3, 2, { a: 3 })); // missed seq 2
    receive(delta(4, 3, { a: 4 }));
    assert.deepEqual(stats, [{ a: 1 }]);
    assert.deepEqual(resyncs(WS.last), [{ type: "subscribe", subscriptions: ["stats"] }]);
    receive(full(4, { a: 4, b: 1 }));
    receive(delta(5, 4, { b: 2 }));
    assert.deepEqual(stats, [{ a: 1 }, { a: 4, b: 1 }, { a: 4, b: 2 }]);
    receive(delta(7, 6, { b: 3 })); // wrong again: a second resync
    assert.equal(resyncs(WS.last).length, 2);
  });

  test("a patch that is not an object, or a seq-less snapshot, means a resync", () => {
    const { WS, stats, receive } = setup({ deltas: true });
    WS.last.accept({ deltas: true });
    receive(full(1, { a: 1 }));
    receive(delta(2, 1, [1, 2]));
    assert.equal(resyncs(WS.last).length, 1);
    receive({ type: "stats_update", data: { a: 2 }, timestamp: T }); // no seq: nothing to patch
    receive(full(2, { a: 2 }));
    receive(delta(3, 2, { a: 3 }));
    assert.deepEqual(stats, [{ a: 1 }, { a: 2 }, { a: 2 }, { a: 3 }]);
  });

  test("a server that ignores the offer: full snapshots, no resync", () => {
    const { WS, stats, receive } = setup({ deltas: true });
    WS.last.accept(); // no `deltas` in connected
    receive({ type: "stats_update", data: { a: 1 }, timestamp: T });
    receive({ type: "stats_update", data: { a: 2 }, timestamp: T });
    assert.deepEqual(stats, [{ a: 1 }, { a: 2 }]);
    assert.deepEqual(WS.last.sent, []);
  });

  test("a reconnect forgets the held snapshot: the old seq is no base", () => {
    const { WS, clock, stats, receive } = setup({ deltas: true });
    WS.last.accept({ deltas: true });
    receive(full(1, { a: 1 }));
    WS.last.serverClose(1012);
    clock.runNext();
    WS.last.accept({ deltas: true });
    receive(delta(2, 1, { a: 2 })); // another instance's seq 1 is not ours
    assert.deepEqual(stats, [{ a: 1 }]);
    assert.equal(resyncs(WS.last).length, 1);
  });
});

describe("useAdminWebSocket deltas", () => {
  test("`deltas: true` reaches the client; `stats` is the merged snapshot", () => {
    const { root, WS, frames } = mountHook({ deltas: true });
    assert.deepEqual(WS.last.protocols, [PROTOCOL, DELTA_PROTOCOL, "bearer.tok"]);
    WS.last.accept({ deltas: true });
    WS.last.receive(full(1, { online: { users: 1 }, activity: { recentActions: [{ id: "4" }] } }));
    frames.flush();
    WS.last.receive(delta(2, 1, { online: { users: 2 } }));
    frames.flush();
    assert.deepEqual(root.output.stats, { online: { users: 2 }, activity: { recentActions: [{ id: "4" }] } });
    assert.deepEqual(root.output.notifications.map((a) => a.id), ["4"]);
    WS.last.receive(delta(9, 8, { online: { users: 3 } }));
    frames.flush();
    assert.equal(root.output.stats.online.users, 2); // never a half-applied or wrong state
    assert.deepEqual(WS.last.sent, [{ type: "subscribe", subscriptions: ["stats"] }]);
    root.unmount();
  });
});
