// The snapshot history (PROTOCOL.md `history`) in the browser client, the React hook and
// the sample dashboard's chart series: `node --test tests/js/`.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Series } from "../../sample_app/static/chart.js";
import { fakeClient, mountHook } from "./helpers/client.mjs";

const T = "2025-01-04T12:00:00.000Z";
const T0 = 1735992000000;

const historyMessage = (users, extra = {}) => ({
  type: "history",
  interval: 5,
  times: users.map((_, i) => T0 + i * 5000),
  series: { "online.users": users, "system.database.latency": users.map(() => null) },
  timestamp: T,
  ...extra,
});

function setup(options = {}) {
  const events = { history: [], errors: [] };
  const { client, WS, clock } = fakeClient({
    onHistory: (history) => events.history.push(history),
    onError: (error) => events.errors.push(error),
    ...options,
  });
  return { client, WS, clock, events };
}

describe("AdminStatsClient history", () => {
  test("requestHistory() sends a history request only when connected", () => {
    const { client, WS } = setup();
    assert.equal(client.requestHistory(), false); // connecting: nothing sent
    WS.last.accept();
    assert.equal(client.requestHistory(), true);
    assert.equal(client.requestHistory(T0 + 5000), true);
    assert.deepEqual(WS.last.sent, [{ type: "history" }, { type: "history", since: T0 + 5000 }]);
  });

  test("the reply goes to onHistory and stays readable as client.history", () => {
    const { client, WS, events } = setup();
    assert.equal(client.history, null);
    WS.last.accept();
    client.requestHistory();
    WS.last.receive(historyMessage([44, 45, null]));
    const expected = {
      interval: 5,
      times: [T0, T0 + 5000, T0 + 10000],
      series: { "online.users": [44, 45, null], "system.database.latency": [null, null, null] },
      timestamp: T,
    };
    assert.deepEqual(events.history, [expected]);
    assert.deepEqual(client.history, expected);
  });

  test("an empty history is a reply; a malformed one is ignored", () => {
    const { WS, events } = setup();
    WS.last.accept();
    WS.last.receive(historyMessage([], { series: {} }));
    WS.last.receive({ type: "history", times: "no", series: {}, timestamp: T });
    WS.last.receive({ type: "history", times: [], series: [1], timestamp: T });
    WS.last.receive({ type: "history", timestamp: T });
    assert.equal(events.history.length, 1);
    assert.deepEqual(events.history[0].times, []);
  });

  test("a server without history answers with an error; the connection stays", () => {
    const { client, WS, events } = setup();
    WS.last.accept();
    client.requestHistory();
    WS.last.receive({ type: "error", code: "history_disabled", message: "history is off here", timestamp: T });
    assert.deepEqual(events.errors, [{ kind: "server", fatal: false, code: "history_disabled", reason: "history is off here" }]);
    assert.equal(client.state, "connected");
    assert.equal(client.history, null);
  });
});

describe("useAdminWebSocket history", () => {
  test("`history: true` asks on every connection; `history` is the latest reply", () => {
    const { root, WS, clock } = mountHook({ history: true });
    assert.equal(root.output.history, null);
    WS.last.accept();
    assert.deepEqual(WS.last.sent, [{ type: "history" }]);
    WS.last.receive(historyMessage([1, 2]));
    assert.deepEqual(root.output.history.series["online.users"], [1, 2]);
    WS.last.serverClose(1012);
    clock.runNext();
    WS.last.accept();
    assert.deepEqual(WS.last.sent, [{ type: "history" }]); // asked again after the reconnect
    WS.last.receive(historyMessage([1, 2, 3]));
    assert.deepEqual(root.output.history.series["online.users"], [1, 2, 3]);
    root.unmount();
  });

  test("off by default; requestHistory() asks when connected", () => {
    const { root, WS } = mountHook({});
    assert.equal(root.output.requestHistory(), false);
    WS.last.accept();
    assert.deepEqual(WS.last.sent, []);
    assert.equal(root.output.requestHistory(T0), true);
    assert.deepEqual(WS.last.sent, [{ type: "history", since: T0 }]);
    WS.last.receive(historyMessage([7]));
    assert.deepEqual(root.output.history.times, [T0]);
    root.unmount();
  });
});

describe("the dashboard's Series.prepend", () => {
  test("earlier samples go before the live ones, never doubling them", () => {
    const series = new Series(60 * 60_000);
    const now = T0 + 3600_000;
    series.add(now, 50);
    series.prepend([
      { t: now - 10_000, v: 48 },
      { t: now - 5_000, v: null }, // no value then: a break
      { t: now, v: 50 }, // the live sample's own snapshot: not again
      { t: now + 5_000, v: 51 },
    ]);
    assert.deepEqual(series.points, [
      { t: now - 10_000, v: 48 },
      { t: now - 5_000, v: null },
      { t: now, v: 50 },
    ]);
    assert.deepEqual(series.last, { t: now, v: 50 });
  });

  test("into an empty series, and only the window's worth", () => {
    const series = new Series(10_000);
    series.prepend([0, 1, 2, 3, 4].map((i) => ({ t: T0 + i * 5000, v: i })));
    assert.deepEqual(series.points.map((p) => p.v), [2, 3, 4]); // 10 s back from the newest
    series.prepend([{ t: T0 - 1, v: Number.NaN }, { t: Number.NaN, v: 1 }]);
    assert.deepEqual(series.points.map((p) => p.v), [2, 3, 4]); // nothing usable
  });
});

describe("the dashboard's Series.fillBreak", () => {
  // Live samples every 5 s, then a dropped connection (a break) and live samples again.
  function dropped() {
    const series = new Series(60 * 60_000);
    series.add(T0, 10);
    series.add(T0 + 5_000, 11);
    series.break(T0 + 7_000);
    series.add(T0 + 30_000, 16);
    return series;
  }

  test("the missed samples join both sides: the break goes", () => {
    const series = dropped();
    const missed = [10_000, 15_000, 20_000, 25_000].map((d, i) => ({ t: T0 + d, v: 12 + i }));
    series.fillBreak([{ t: T0 + 5_000, v: 11 }, ...missed, { t: T0 + 30_000, v: 16 }], 10_000);
    assert.deepEqual(series.points.map((p) => p.v), [10, 11, 12, 13, 14, 15, 16]);
  });

  test("a history that begins later (a restarted server) keeps the break before it", () => {
    const series = dropped();
    series.fillBreak([{ t: T0 + 20_000, v: 3 }, { t: T0 + 25_000, v: 4 }], 10_000);
    assert.deepEqual(series.points, [
      { t: T0, v: 10 },
      { t: T0 + 5_000, v: 11 },
      { t: T0 + 7_000, v: null },
      { t: T0 + 20_000, v: 3 },
      { t: T0 + 25_000, v: 4 },
      { t: T0 + 30_000, v: 16 },
    ]);
  });

  test("the newest break only, and nothing without one", () => {
    const series = dropped();
    series.break(T0 + 32_000);
    series.add(T0 + 40_000, 18);
    series.fillBreak([{ t: T0 + 20_000, v: 0 }, { t: T0 + 35_000, v: 17 }], 10_000);
    assert.deepEqual(series.points.slice(-3).map((p) => p.v), [16, 17, 18]);
    assert.equal(series.points.filter((p) => p.v === 0).length, 0); // not the older break's
    const plain = new Series(60_000);
    plain.add(T0, 1);
    plain.fillBreak([{ t: T0 + 1, v: 2 }], 10_000);
    assert.deepEqual(plain.points, [{ t: T0, v: 1 }]);
  });
});
