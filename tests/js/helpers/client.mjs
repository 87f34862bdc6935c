// The browser client and the React hook set up over the fakes in ./fakes.mjs, so that each
// test file states only the callbacks and options its tests look at.

import { AdminStatsClient } from "../../../asgi_adminstats/static/adminstats.js";
import { createUseAdminWebSocket } from "../../../asgi_adminstats/static/use-admin-websocket.js";
import { FakeClock, FakeFrames, createFakeReact, makeFakeWebSocket } from "./fakes.mjs";

export const URL_ = "ws://example.test/admin/ws";

/**
 * A fresh fake WebSocket class, clock and animation frames, and the client options that
 * wire them in (timers, render scheduling, jitter fixed at 0.5).
 */
export function makeFakes() {
  const WS = makeFakeWebSocket();
  const clock = new FakeClock();
  const frames = new FakeFrames();
  const clientOptions = {
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    scheduleRender: frames.schedule,
    cancelRender: frames.cancel,
    random: () => 0.5,
  };
  return { WS, clock, frames, clientOptions };
}

/** An AdminStatsClient for URL_ (token "tok") over fresh fakes; `options` win over both. */
export function fakeClient(options = {}) {
  const { WS, clock, frames, clientOptions } = makeFakes();
  const client = new AdminStatsClient({ url: URL_, token: "tok", WebSocketImpl: WS, ...clientOptions, ...options });
  return { client, WS, clock, frames };
}

/**
 * useAdminWebSocket rendered over a fake React and fresh fakes, with `props` (URL_ and
 * token "tok" unless given); `clientOptions` win over the fakes' options.
 */
export function mountHook(props = {}, clientOptions = {}) {
  const { React, render } = createFakeReact();
  const fakes = makeFakes();
  const useAdminWebSocket = createUseAdminWebSocket(React);
  const options = { ...fakes.clientOptions, ...clientOptions };
  const root = render((p) => useAdminWebSocket({ WebSocketImpl: fakes.WS, clientOptions: options, ...p }), {
    url: URL_,
    token: "tok",
    ...props,
  });
  return { root, WS: fakes.WS, clock: fakes.clock, frames: fakes.frames };
}
