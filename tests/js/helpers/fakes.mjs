// Test doubles for the browser client: a WebSocket the test drives by hand, timers that
// run only when the test advances the clock, animation frames flushed on demand, and a
// tiny React (useState/useEffect/useRef/useCallback over a synchronous render loop).

/** A fresh WebSocket class whose instances are recorded in `FakeWebSocket.instances`. */
export function makeFakeWebSocket() {
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static instances = [];

    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols === undefined ? [] : [].concat(protocols);
      this.readyState = FakeWebSocket.CONNECTING;
      this.sentFrames = [];
      this.closeCalls = [];
      this._listeners = new Map();
      FakeWebSocket.instances.push(this);
    }

    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }

    addEventListener(type, fn) {
      if (!this._listeners.has(type)) this._listeners.set(type, new Set());
      this._listeners.get(type).add(fn);
    }

    removeEventListener(type, fn) {
      this._listeners.get(type)?.delete(fn);
    }

    listenerCount() {
      let n = 0;
      for (const set of this._listeners.values()) n += set.size;
      return n;
    }

    send(data) {
      if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send() while not OPEN");
      this.sentFrames.push(data);
    }

    /** Sent frames, parsed. */
    get sent() {
      return this.sentFrames.map((frame) => JSON.parse(frame));
    }

    close(code, reason) {
      this.closeCalls.push({ code, reason });
      if (this.readyState === FakeWebSocket.CONNECTING || this.readyState === FakeWebSocket.OPEN) {
        this.readyState = FakeWebSocket.CLOSING;
      }
    }

    _dispatch(type, event) {
      for (const fn of [...(this._listeners.get(type) ?? [])]) fn(event);
    }

    // --- driven by the test ---

    open() {
      this.readyState = FakeWebSocket.OPEN;
      this._dispatch("open", { type: "open" });
    }

    /** Deliver a server message (an object is JSON-encoded; a string is sent as is). */
    receive(message) {
      const data = typeof message === "string" ? message : JSON.stringify(message);
      this._dispatch("message", { type: "message", data });
    }

    /** Open and send `connected`, the way the server accepts a client. */
    accept(extra = {}) {
      this.open();
      this.receive({
        type: "connected",
        message: "Connected to admin WebSocket server",
        timestamp: "2025-01-04T12:00:00Z",
        protocol: "adminstats.v1",
        connectionId: `conn-${FakeWebSocket.instances.indexOf(this) + 1}`,
        user: { sub: "alice" },
        subscriptions: ["stats", "notifications"],
        statsInterval: 5,
        heartbeatInterval: 30,
        ...extra,
      });
    }

    /** The server (or the network: 1006) closes the connection. */
    serverClose(code = 1006, reason = "") {
      this.readyState = FakeWebSocket.CLOSED;
      this._dispatch("error", { type: "error" });
      this._dispatch("close", { type: "close", code, reason, wasClean: code !== 1006 });
    }
  }
  return FakeWebSocket;
}

/** setTimeout/clearTimeout over a virtual clock; nothing runs until advance(). */
export class FakeClock {
  constructor() {
    this.now = 0;
    this._timers = new Map();
    this._nextId = 1;
    this.setTimeout = (fn, ms = 0) => {
      const id = this._nextId++;
      this._timers.set(id, { fn, at: this.now + Math.max(0, Number(ms) || 0), id });
      return id;
    };
    this.clearTimeout = (id) => {
      this._timers.delete(id);
    };
  }

  get pending() {
    return this._timers.size;
  }

  /** Delays of the pending timers, from now. */
  delays() {
    return [...this._timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      let next = null;
      for (const t of this._timers.values()) {
        if (t.at <= until && (next === null || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (next === null) break;
      this._timers.delete(next.id);
      this.now = next.at;
      next.fn();
    }
    this.now = until;
  }

  /** Run the earliest pending timer, whatever its delay. */
  runNext() {
    const [first] = [...this._timers.values()].sort((a, b) => a.at - b.at || a.id - b.id);
    if (!first) return false;
    this.advance(first.at - this.now);
    return true;
  }
}

/** requestAnimationFrame/cancelAnimationFrame stand-ins: frames run on flush(). */
export class FakeFrames {
  constructor() {
    this._frames = new Map();
    this._nextId = 1;
    this.requested = 0;
    this.schedule = (cb) => {
      const id = this._nextId++;
      this._frames.set(id, cb);
      this.requested += 1;
      return id;
    };
    this.cancel = (id) => {
      this._frames.delete(id);
    };
  }

  get pending() {
    return this._frames.size;
  }

  flush() {
    const frames = [...this._frames.values()];
    this._frames.clear();
    for (const cb of frames) cb(16);
  }
}

/** Let pending promise callbacks (an async getToken) run. */
export async function settle() {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A minimal React for hooks: one component, rendered synchronously; a state update
 * outside a render re-renders at once; effects run after each render when their deps
 * change, cleanups before re-running and on unmount.
 */
export function createFakeReact() {
  let current = null; // the root being rendered

  function slot(init) {
    const root = current;
    if (!root) throw new Error("hook called outside a render");
    const i = root.index++;
    if (root.slots.length <= i) root.slots.push(init());
    return root.slots[i];
  }

  const depsChanged = (prev, next) =>
    prev === undefined || next === undefined || prev.length !== next.length || prev.some((v, i) => !Object.is(v, next[i]));

  const React = {
    useState(initial) {
      const root = current;
      const s = slot(() => ({ value: typeof initial === "function" ? initial() : initial }));
      if (!s.set) {
        s.set = (update) => {
          if (root.unmounted) return;
          const value = typeof update === "function" ? update(s.value) : update;
          if (Object.is(value, s.value)) return;
          s.value = value;
          root.invalidate();
        };
      }
      return [s.value, s.set];
    },
    useRef(initial) {
      return slot(() => ({ current: initial }));
    },
    useCallback(fn, deps) {
      const s = slot(() => ({ fn, deps }));
      if (depsChanged(s.deps, deps)) {
        s.fn = fn;
        s.deps = deps;
      }
      return s.fn;
    },
    useEffect(effect, deps) {
      const root = current;
      const s = slot(() => ({ deps: undefined, cleanup: undefined, initial: true }));
      if (s.initial || depsChanged(s.deps, deps)) {
        s.initial = false;
        s.deps = deps;
        root.effects.push(() => {
          if (typeof s.cleanup === "function") s.cleanup();
          s.cleanup = effect();
        });
      }
    },
  };

  function render(component, props) {
    const root = {
      slots: [],
      index: 0,
      effects: [],
      props,
      output: undefined,
      renders: 0,
      dirty: false,
      rendering: false,
      unmounted: false,
      invalidate() {
        root.dirty = true;
        if (!root.rendering) root.loop();
      },
      loop() {
        root.rendering = true;
        try {
          let guard = 0;
          do {
            if (++guard > 50) throw new Error("render loop did not settle");
            root.dirty = false;
            root.index = 0;
            current = root;
            try {
              root.output = component(root.props);
            } finally {
              current = null;
            }
            root.renders += 1;
            const effects = root.effects.splice(0);
            for (const run of effects) run();
          } while (root.dirty && !root.unmounted);
        } finally {
          root.rendering = false;
        }
      },
      rerender(nextProps) {
        root.props = nextProps;
        root.invalidate();
      },
      unmount() {
        root.unmounted = true;
        for (const s of root.slots) {
          if (s && typeof s.cleanup === "function") {
            const cleanup = s.cleanup;
            s.cleanup = undefined;
            cleanup();
          }
        }
      },
    };
    root.loop();
    return root;
  }

  return { React, render };
}
