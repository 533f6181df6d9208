// Training curves as SVG line charts; redrawn from the whole history on each update
// (cheap: series are thinned to at most MAX_POINTS points).

import { clear, h, s } from "./dom.js";
import { num } from "./format.js";

const WIDTH = 560;
const HEIGHT = 240;
const PAD = { left: 56, right: 16, top: 16, bottom: 36 };
const MAX_POINTS = 600;

export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) {
    const delta = Math.abs(min) * 0.1 || 1;
    min -= delta;
    max += delta;
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((st) => st >= raw) ?? raw;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const stride = points.length / MAX_POINTS;
  const out = [];
  for (let i = 0; i < MAX_POINTS; i++) out.push(points[Math.floor(i * stride)]);
  out.push(points[points.length - 1]);
  return out;
}

/**
 * A chart of named series over epochs. series: [{key, label, className}], each read
 * from history entries as entry[key]. Call update(history) as epochs arrive.
 */
export class LineChart {
  constructor({ title, series, percent = false, log = false }) {
    this.series = series;
    this.percent = percent;
    this.log = log;
    this.svg = s("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: "chart",
      role: "img",
      "aria-label": title,
      "data-points": "0",
    });
    this.legend = h(
      "ul",
      { class: "legend" },
      series.map((se) => h("li", {}, h("span", { class: `swatch ${se.className}` }), se.label)),
    );
    this.element = h("figure", { class: "chart-box" }, h("figcaption", {}, title), this.svg, this.legend);
    this.history = [];
    this.update([]);
  }

  setLog(log) {
    this.log = log;
    this.update(this.history);
  }

  update(history) {
    this.history = history;
    const svg = clear(this.svg);
    const lines = this.series
      .map((se) => ({
        ...se,
        points: thin(
          history
            .filter((e) => typeof e[se.key] === "number" && Number.isFinite(e[se.key]))
            .filter((e) => !this.log || e[se.key] > 0)
            .map((e) => [e.epoch, this.log ? Math.log10(e[se.key]) : e[se.key]]),
        ),
      }))
      .filter((se) => se.points.length > 0);
    const count = lines.reduce((n, se) => Math.max(n, se.points.length), 0);
    svg.setAttribute("data-points", String(count));
    if (count === 0) {
      svg.append(s("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "chart-empty" }, "Waiting for the first epoch…"));
      return;
    }
    const all = lines.flatMap((se) => se.points);
    const xMax = Math.max(2, ...all.map((p) => p[0]));
    const xMin = Math.min(1, ...all.map((p) => p[0]));
    let yMin = Math.min(...all.map((p) => p[1]));
    let yMax = Math.max(...all.map((p) => p[1]));
    if (this.percent) {
      yMin = Math.max(0, Math.min(yMin, 0.5));
      yMax = 1;
    } else if (!this.log) {
      yMin = Math.min(0, yMin);
    }
    const yTicks = niceTicks(yMin, yMax, 5);
    if (!this.log && yTicks.length) {
      yMin = Math.min(yMin, yTicks[0]);
      yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
    }
    if (yMin === yMax) { yMin -= 1; yMax += 1; }
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (v) => PAD.left + ((v - xMin) / (xMax - xMin)) * plotW;
    const y = (v) => PAD.top + (1 - (v - yMin) / (yMax - yMin)) * plotH;

    const grid = s("g", { class: "grid" });
    for (const t of yTicks.filter((t) => t >= yMin && t <= yMax)) {
      const label = this.log ? num(10 ** t, 2) : this.percent ? `${Math.round(t * 100)}%` : num(t, 3);
      grid.append(
        s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(t), y2: y(t) }),
        s("text", { x: PAD.left - 8, y: y(t) + 4, class: "tick tick-y" }, label),
      );
    }
    for (const t of niceTicks(xMin, xMax, 6).filter((t) => Number.isInteger(t) && t >= xMin && t <= xMax)) {
      grid.append(s("text", { x: x(t), y: HEIGHT - PAD.bottom + 18, class: "tick tick-x" }, String(t)));
    }
    grid.append(
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH, class: "axis" }),
      s("text", { x: PAD.left + plotW / 2, y: HEIGHT - 4, class: "axis-label" }, "epoch"),
    );
    svg.append(grid);
    for (const se of lines) {
      const d = se.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      svg.append(s("path", { d, class: `series ${se.className}`, "data-series": se.key }));
      const [lx, ly] = se.points[se.points.length - 1];
      svg.append(s("circle", { cx: x(lx), cy: y(ly), r: 3, class: `series-end ${se.className}` }));
    }
  }
}

/** Which accuracy-like metric a history has: accuracy for classifiers, r2 or mae otherwise. */
export function secondMetric(history) {
  const sample = history.find(Boolean) ?? {};
  if ("accuracy" in sample || "val_accuracy" in sample) return { key: "accuracy", title: "Accuracy", percent: true };
  if ("r2" in sample || "val_r2" in sample) return { key: "r2", title: "R²", percent: false };
  if ("mae" in sample || "val_mae" in sample) return { key: "mae", title: "Mean absolute error", percent: false };
  return null;
}
