// chart.js: a tiny time-series chart in inline SVG (no library): a line with a soft area
// under it, a few horizontal grid lines with labels, and time labels along the bottom.
//
//   const series = new Series(10 * 60_000);       // keeps the last 10 minutes
//   const chart = new TimeChart(element, { color: "#3b6fd8", format: (v) => v.toFixed(0) });
//   series.add(Date.now(), 42);
//   series.prepend([{ t: Date.now() - 60_000, v: 40 }]);  // earlier samples (the server's history)
//   series.fillBreak(missed, 10_000);              // what a dropped connection missed (its history)
//   chart.draw(series, Date.now());                // again whenever data or time moves
//
// The SVG is redrawn at the element's pixel size (a ResizeObserver follows the layout),
// so lines stay 2 px and text stays the page's size on a laptop and on a wall screen.
// Only attributes are set (never inline styles): the page's CSP has no 'unsafe-inline'.

const SVG = "http://www.w3.org/2000/svg";
let chartCount = 0;

/**
 * Samples {t, v} (t in ms), oldest first; older than `windowMs` are dropped on add.
 * A sample with v === null is a break: the line stops there (the connection dropped).
 */
/** A history sample worth drawing: a finite time, and a finite value or null (a break). */
function usable(p) {
  return Number.isFinite(p.t) && (p.v === null || (typeof p.v === "number" && Number.isFinite(p.v)));
}

export class Series {
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.points = [];
  }

  add(t, v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return;
    this._push({ t, v });
  }

  /** No data from `t` until the next sample. */
  break(t) {
    const last = this.points[this.points.length - 1];
    if (last && last.v !== null) this._push({ t, v: null });
  }

  /**
   * Earlier samples [{t, v}] (oldest first; v null where there was none, a break) put
   * before those held: only those older than the first held sample, so a live sample
   * is never doubled. The window then counts back from the newest sample.
   */
  prepend(samples) {
    const first = this.points.length ? this.points[0].t : Infinity;
    const older = samples.filter((p) => usable(p) && p.t < first);
    if (!older.length) return;
    this.points = [...older, ...this.points];
    const oldest = this.points[this.points.length - 1].t - this.windowMs;
    const drop = this.points.findIndex((p) => p.t >= oldest);
    if (drop > 0) this.points.splice(0, drop);
  }

  /**
   * Samples [{t, v}] the page missed while its connection was down (the server's history
   * of that time), put into the newest break: those between the samples either side of
   * it. The break stays unless they join both sides with no step longer than `joinMs`
   * (a restarted server's history begins only at its start).
   */
  fillBreak(samples, joinMs) {
    const at = this.points.findLastIndex((p) => p.v === null);
    if (at <= 0) return;
    const before = this.points[at - 1].t;
    const after = at + 1 < this.points.length ? this.points[at + 1].t : Infinity;
    const inside = samples.filter((p) => usable(p) && p.t > before && p.t < after);
    if (!inside.length) return;
    const times = [before, ...inside.map((p) => p.t), after];
    const joins = times.every((t, i) => i === 0 || t - times[i - 1] <= joinMs);
    const gap = joins ? [] : [{ t: Math.min(this.points[at].t, inside[0].t), v: null }];
    this.points.splice(at, 1, ...gap, ...inside);
  }

  _push(point) {
    this.points.push(point);
    const oldest = point.t - this.windowMs;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].t < oldest) drop += 1;
    if (drop) this.points.splice(0, drop);
  }

  get last() {
    for (let i = this.points.length - 1; i >= 0; i -= 1) {
      if (this.points[i].v !== null) return this.points[i];
    }
    return null;
  }
}

/** Round numbers for an axis: about `count` steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(min, max, count = 3, minStep = 0) {
  let lo = min;
  let hi = max;
  if (!(hi > lo)) {
    const pad = Math.max(Math.abs(lo) * 0.05, minStep || 1);
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  let step = (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  if (minStep && step < minStep) step = minStep;
  const first = Math.floor(lo / step) * step;
  const last = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { ticks, step, min: first, max: last };
}

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function spanText(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  return `${Math.round(s / 60)} min`;
}

export class TimeChart {
  /**
   * @param {HTMLElement} element  the container; its size decides the chart's size
   * @param {object} options
   * @param {string} options.color
   * @param {(v: number, step?: number) => string} [options.format]  values (step: for axis labels)
   * @param {boolean} [options.zero=false]  the y axis always includes 0
   * @param {number} [options.minStep=0]  smallest y step (1 for counts)
   * @param {number} [options.minSpanMs=60000]  the x axis covers at least this much time
   * @param {number} [options.gapMs=15000]  a longer pause between samples breaks the line
   * @param {string} [options.label]  for the accessible description
   */
  constructor(element, options) {
    this.element = element;
    this.options = { format: String, zero: false, minStep: 0, minSpanMs: 60_000, gapMs: 15_000, label: "", ...options };
    this.id = `chart${++chartCount}`;
    this.series = null;
    this.now = 0;
    this.size = { width: 0, height: 0 };
    if (typeof ResizeObserver === "function") {
      this.observer = new ResizeObserver(() => this.redraw());
      this.observer.observe(element);
    }
  }

  /** Draw `series` with the right edge at `now` (ms). */
  draw(series, now) {
    this.series = series;
    this.now = now;
    this.redraw();
  }

  /** The time span on screen: the window once that much history exists, less before. */
  span(series = this.series, now = this.now) {
    const { minSpanMs } = this.options;
    const first = series?.points[0];
    const window = series?.windowMs ?? minSpanMs;
    if (!first) return Math.min(window, minSpanMs);
    return Math.min(window, Math.max(minSpanMs, now - first.t));
  }

  redraw() {
    const { element, options } = this;
    const width = Math.round(element.clientWidth);
    const height = Math.round(element.clientHeight);
    if (!width || !height || !this.series) return;
    const style = getComputedStyle(element);
    const font = parseFloat(style.fontSize) || 12;
    const now = this.now;
    const spanMs = this.span();
    const start = now - spanMs;
    const all = this.series.points.filter((p) => p.t >= start - options.gapMs);
    const points = all.filter((p) => p.v !== null);

    const svg = el("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`,
      class: "chart-svg", "aria-hidden": "true", focusable: "false",
    });

    const visible = points.filter((p) => p.t >= start);
    const values = (visible.length ? visible : points).map((p) => p.v);
    let lo = values.length ? Math.min(...values) : 0;
    let hi = values.length ? Math.max(...values) : 1;
    if (options.zero) lo = Math.min(0, lo);
    const axis = niceTicks(lo, hi, height < 120 ? 2 : 3, options.minStep);
    if (options.zero) axis.ticks = axis.ticks.filter((t) => t >= 0);

    const labels = axis.ticks.map((t) => options.format(t, axis.step));
    const labelWidth = Math.max(...labels.map((s) => s.length)) * font * 0.62;
    const pad = { left: Math.ceil(labelWidth + font * 0.6), right: Math.ceil(font * 0.6), top: Math.ceil(font * 0.7), bottom: Math.ceil(font * 1.6) };
    const plotW = Math.max(10, width - pad.left - pad.right);
    const plotH = Math.max(10, height - pad.top - pad.bottom);
    const x = (t) => pad.left + ((t - start) / spanMs) * plotW;
    const y = (v) => pad.top + (1 - (v - axis.min) / (axis.max - axis.min || 1)) * plotH;

    // Grid and y labels (no numbers before there is data: a baseline only).
    if (!points.length) {
      axis.ticks = [axis.ticks[0]];
      labels.length = 1;
      labels[0] = "";
    }
    axis.ticks.forEach((tick, i) => {
      const ty = Math.round(y(tick)) + 0.5;
      svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: ty, y2: ty, class: "chart-grid" }));
      svg.append(el("text", { x: pad.left - font * 0.45, y: ty, "dominant-baseline": "middle", "text-anchor": "end", class: "chart-label" }, labels[i]));
    });
    // Time labels: the left edge, the middle, now.
    const bottom = height - font * 0.35;
    svg.append(el("text", { x: pad.left, y: bottom, "text-anchor": "start", class: "chart-label" }, `−${spanText(spanMs)}`));
    svg.append(el("text", { x: pad.left + plotW / 2, y: bottom, "text-anchor": "middle", class: "chart-label" }, `−${spanText(spanMs / 2)}`));
    svg.append(el("text", { x: width - pad.right, y: bottom, "text-anchor": "end", class: "chart-label" }, "now"));

    if (!points.length) {
      svg.append(el("text", { x: pad.left + plotW / 2, y: pad.top + plotH / 2, "text-anchor": "middle", "dominant-baseline": "middle", class: "chart-empty" }, "waiting for data…"));
      element.replaceChildren(svg);
      return;
    }

    // Clip to the plot: the point just before the window still draws the line's start.
    const clip = `${this.id}-clip`;
    const gradient = `${this.id}-fill`;
    const defs = el("defs");
    const clipPath = el("clipPath", { id: clip });
    clipPath.append(el("rect", { x: pad.left, y: 0, width: plotW + 1, height: pad.top + plotH + 1 }));
    const fill = el("linearGradient", { id: gradient, x1: 0, y1: 0, x2: 0, y2: 1 });
    fill.append(el("stop", { offset: "0%", "stop-color": options.color, "stop-opacity": 0.28 }));
    fill.append(el("stop", { offset: "100%", "stop-color": options.color, "stop-opacity": 0.02 }));
    defs.append(clipPath, fill);
    svg.append(defs);

    // Segments: a break (connection lost) or a pause longer than gapMs leaves a hole.
    const segments = [];
    let current = [];
    for (const p of all) {
      const gap = current.length && p.t - current[current.length - 1].t > options.gapMs;
      if ((p.v === null || gap) && current.length) {
        segments.push(current);
        current = [];
      }
      if (p.v !== null) current.push(p);
    }
    if (current.length) segments.push(current);

    const base = pad.top + plotH;
    const group = el("g", { "clip-path": `url(#${clip})` });
    const stroke = Math.max(2, font * 0.14);
    for (const segment of segments) {
      const coords = segment.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      if (segment.length === 1) {
        group.append(el("circle", { cx: x(segment[0].t), cy: y(segment[0].v), r: stroke, fill: options.color }));
        continue;
      }
      const firstX = x(segment[0].t).toFixed(1);
      const lastX = x(segment[segment.length - 1].t).toFixed(1);
      group.append(el("path", { d: `M${firstX},${base} L${coords.join(" L")} L${lastX},${base} Z`, fill: `url(#${gradient})` }));
      group.append(el("path", { d: `M${coords.join(" L")}`, fill: "none", stroke: options.color, "stroke-width": stroke, "stroke-linejoin": "round", "stroke-linecap": "round" }));
    }
    svg.append(group);

    const last = points[points.length - 1];
    const open = all[all.length - 1].v !== null; // no dot while the line is broken off
    if (open && last.t >= start) {
      svg.append(el("circle", { cx: x(last.t), cy: y(last.v), r: stroke * 1.8, fill: options.color, class: "chart-dot" }));
    }
    element.replaceChildren(svg);

    const lows = Math.min(...values);
    const highs = Math.max(...values);
    element.setAttribute(
      "aria-label",
      `${options.label}, last ${spanText(spanMs)}: now ${options.format(last.v)}, ` +
        `lowest ${options.format(lows)}, highest ${options.format(highs)}`,
    );
  }
}
