// A refused upgrade told apart from a network fault (issue 14, item 4.1): `node --test tests/js/`.
//
// Browsers close a socket whose upgrade was refused (403 Origin, 429, ...) with 1006 before
// `open`, exactly as for a network fault. The client then asks `<mount>/admission` once:
// an answer is a refusal (onRefused, client.refusal, the hook's `refusal`), no answer a
// network fault. Either way it keeps reconnecting with backoff.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { admissionUrl, describeRefusal } from "../../asgi_adminstats/static/adminstats.js";
import { URL_, fakeClient, mountHook } from "./helpers/client.mjs";
import { settle } from "./helpers/fakes.mjs";

const ADMISSION = "http://example.test/admin/ws/admission";

/** A fetch whose calls are recorded; each answers with what `answer()` gives. */
function makeFetch(answer) {
  const calls = [];
  const fetchImpl = (url, init) => {
    calls.push({ url, init });
    return answer(url, init);
  };
  return { fetchImpl, calls };
}

const json = (status, body) => Promise.resolve({ status, json: () => Promise.resolve(body) });
const offline = () => Promise.reject(new TypeError("Failed to fetch"));

function setup(fetchImpl, options = {}) {
  const events = { states: [], stateInfo: [], refusals: [] };
  const { client, WS, clock } = fakeClient({
    token: "tok-1",
    fetchImpl,
    onStateChange: (state, info) => {
      events.states.push(state);
      events.stateInfo.push(info);
    },
    onRefused: (refusal) => events.refusals.push(refusal),
    ...options,
  });
  return { client, WS, clock, events };
}

describe("admissionUrl", () => {
  test("the mount's /admission over http(s), without the query or a trailing slash", () => {
    assert.equal(admissionUrl(URL_), ADMISSION);
    assert.equal(admissionUrl("wss://h.test:8443/admin/ws/?access_token=secret#x"), "https://h.test:8443/admin/ws/admission");
    assert.equal(admissionUrl("not a url"), null);
  });
});

describe("describeRefusal", () => {
  test("an Origin not allowed names the origin and the setting", () => {
    const r = describeRefusal({ status: 200, body: { origin: "http://a.test", allowed: false, limited: false } });
    assert.equal(r.reason, "origin");
    assert.equal(r.origin, "http://a.test");
    assert.match(r.hint, /http:\/\/a\.test/);
    assert.match(r.hint, /ADMINSTATS_ALLOWED_ORIGINS/);
  });

  test("the attempt limit, another refusal, and an answer that is not adminstats'", () => {
    assert.equal(describeRefusal({ status: 200, body: { origin: null, allowed: true, limited: true } }).reason, "rate");
    assert.equal(describeRefusal({ status: 200, body: { origin: "o", allowed: true, limited: false } }).reason, "upgrade");
    const unknown = describeRefusal({ status: 404, body: null, origin: "http://page.test" });
    assert.equal(unknown.reason, "unknown");
    assert.equal(unknown.origin, "http://page.test");
    assert.match(unknown.hint, /404/);
    assert.equal(describeRefusal({ status: 200, body: { allowed: "no" } }).reason, "unknown");
  });
});

describe("a socket closed before it opened", () => {
  test("the server answers /admission: a refusal, reported once, while it backs off", async () => {
    const { fetchImpl, calls } = makeFetch(() => json(200, { origin: "http://page.test", allowed: false, limited: false }));
    const { client, WS, clock, events } = setup(fetchImpl);
    WS.last.serverClose(1006);
    assert.equal(client.state, "reconnecting");
    assert.ok(events.stateInfo.at(-1).delay > 0, "backs off before the next attempt");
    await settle();
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, ADMISSION);
    assert.equal(calls[0].init.method, "POST"); // browsers send Origin with every POST
    assert.equal(calls[0].init.credentials, "omit");
    assert.equal(events.refusals.length, 1);
    assert.equal(events.refusals[0].reason, "origin");
    assert.equal(client.refusal.reason, "origin");
    assert.equal(client.refusal.origin, "http://page.test");
    assert.equal(client.state, "reconnecting"); // still trying: the server may be fixed

    // Refused again: asked again (one request per failed attempt, so backoff-bound)...
    clock.runNext();
    assert.equal(WS.instances.length, 2);
    WS.last.serverClose(1006);
    const delays = events.stateInfo.filter((info) => info.code === 1006).map((info) => info.delay);
    assert.ok(delays[1] > delays[0], `the backoff grows: ${delays}`);
    await settle();
    assert.equal(calls.length, 2);
    // ...and once the origin is allowed, the next connection clears the refusal.
    clock.runNext();
    WS.last.accept();
    assert.equal(client.state, "connected");
    assert.equal(client.refusal, null);
    assert.equal(events.refusals.at(-1), null);
    client.close();
  });

  test("no answer from /admission: a network fault, no refusal", async () => {
    const { fetchImpl, calls } = makeFetch(offline);
    const { client, WS, events } = setup(fetchImpl);
    WS.last.serverClose(1006);
    await settle();
    assert.equal(calls.length, 1);
    assert.deepEqual(events.refusals, []);
    assert.equal(client.refusal, null);
    assert.equal(client.state, "reconnecting");
    client.close();
  });

  test("a refusal followed by a network fault is cleared", async () => {
    let up = true;
    const { fetchImpl } = makeFetch(() => (up ? json(200, { origin: "o", allowed: false, limited: false }) : offline()));
    const { client, WS, clock, events } = setup(fetchImpl);
    WS.last.serverClose(1006);
    await settle();
    assert.equal(client.refusal.reason, "origin");
    up = false;
    clock.runNext();
    WS.last.serverClose(1006);
    await settle();
    assert.equal(client.refusal, null);
    assert.deepEqual(events.refusals.map((r) => r?.reason ?? null), ["origin", null]);
    client.close();
  });

  test("a connection that opened and dropped is not asked about", async () => {
    const { fetchImpl, calls } = makeFetch(() => json(200, { origin: "o", allowed: false, limited: false }));
    const { client, WS } = setup(fetchImpl);
    WS.last.accept();
    WS.last.serverClose(1006);
    await settle();
    assert.equal(calls.length, 0);
    assert.equal(client.refusal, null);
    // An upgrade that succeeded and closed before `connected` is not a refusal either.
    const { fetchImpl: f2, calls: c2 } = makeFetch(() => json(200, {}));
    const second = setup(f2);
    second.WS.last.open();
    second.WS.last.serverClose(1006);
    await settle();
    assert.equal(c2.length, 0);
    client.close();
    second.client.close();
  });

  test("one request at a time, and nothing after close()", async () => {
    let release;
    const pending = new Promise((resolve) => {
      release = resolve;
    });
    const { fetchImpl, calls } = makeFetch(() => pending);
    const { client, WS, clock, events } = setup(fetchImpl);
    WS.last.serverClose(1006);
    clock.runNext();
    WS.last.serverClose(1006); // the first request is still out
    await settle();
    assert.equal(calls.length, 1);
    client.close();
    release({ status: 200, json: () => Promise.resolve({ origin: "o", allowed: false, limited: false }) });
    await settle();
    assert.deepEqual(events.refusals, []);
    assert.equal(client.refusal, null);
  });

  test("outside a page (Node) nothing is fetched unless fetchImpl is given", async () => {
    const original = globalThis.fetch;
    let fetched = 0;
    globalThis.fetch = () => {
      fetched += 1;
      return offline();
    };
    try {
      const { client, WS } = fakeClient({ scheduleRender: null });
      WS.last.serverClose(1006);
      await settle();
      assert.equal(fetched, 0);
      client.close();
    } finally {
      globalThis.fetch = original;
    }
  });
});

describe("useAdminWebSocket", () => {
  test("exposes the refusal, and clears it on the next connection", async () => {
    const { fetchImpl } = makeFetch(() => json(200, { origin: "http://page.test", allowed: false, limited: false }));
    const { root, WS, clock } = mountHook({}, { scheduleRender: null, fetchImpl });
    assert.equal(root.output.refusal, null);
    WS.last.serverClose(1006);
    await settle();
    assert.equal(root.output.status, "reconnecting");
    assert.equal(root.output.refusal.reason, "origin");
    assert.match(root.output.refusal.hint, /ADMINSTATS_ALLOWED_ORIGINS/);
    clock.runNext();
    WS.last.accept();
    assert.equal(root.output.status, "connected");
    assert.equal(root.output.refusal, null);
    root.unmount();
  });
});
