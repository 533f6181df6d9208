// The plots of a sweep: each trial's score against one parameter (numbers on a linear or
// log axis, other values as evenly spaced categories), and the curves of the best trials
// overlaid. Plain SVG; points and paths carry data-* attributes the tests read.

import { h, s } from "./dom.js";
import { classColor, rgb } from "./colors.js";
import { num } from "./format.js";
import { niceTicks } from "./charts.js";

const W = 360;
const H = 240;
const PAD = { left: 52, right: 12, top: 12, bottom: 40 };
const CURVE_W = 560;

function label(value) {
  if (Array.isArray(value)) return value.map((l) => (l && l.units ? `${l.units}` : JSON.stringify(l))).join("-");
  return typeof value === "number" ? num(value, 3) : JSON.stringify(value);
}

function yScale(values, top, height) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const ticks = niceTicks(lo, hi, 4);
  return { ticks, y: (v) => top + (1 - (v - lo) / (hi - lo)) * height, lo, hi };
}

/** Score against the parameter at `path`, one point per scored trial. */
export function scoreByParam(trials, path, metric) {
  const scored = trials.filter((t) => t.score !== null && path in t.params);
  const values = scored.map((t) => t.params[path]);
  const numeric = values.every((v) => typeof v === "number");
  const positive = numeric && values.every((v) => v > 0);
  const spread = positive ? Math.max(...values) / Math.min(...values) : 1;
  const log = positive && spread >= 20;
  const categories = numeric ? [] : [...new Set(values.map((v) => JSON.stringify(v)))];
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const xs = values.map((v) => (numeric ? (log ? Math.log10(v) : v) : categories.indexOf(JSON.stringify(v))));
  let xLo = Math.min(...xs, numeric ? Infinity : -0.5);
  let xHi = Math.max(...xs, numeric ? -Infinity : categories.length - 0.5);
  if (xLo === xHi) { xLo -= 1; xHi += 1; }
  const x = (v) => PAD.left + ((v - xLo) / (xHi - xLo)) * plotW;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart scatter", role: "img", "aria-label": `${metric} against ${path}`, "data-path": path, "data-points": scored.length });
  if (!scored.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "chart-empty" }, "No scored trials yet"));
  } else {
    const { ticks, y } = yScale(scored.map((t) => t.score), PAD.top, plotH);
    const grid = s("g", { class: "grid" });
    for (const t of ticks) {
      if (y(t) < PAD.top - 1 || y(t) > PAD.top + plotH + 1) continue;
      grid.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(t), y2: y(t) }), s("text", { x: PAD.left - 6, y: y(t) + 4, class: "tick tick-y" }, num(t, 3)));
    }
    if (numeric) {
      for (const t of niceTicks(xLo, xHi, 4)) {
        if (t < xLo || t > xHi) continue;
        grid.append(s("text", { x: x(t), y: H - PAD.bottom + 16, class: "tick tick-x" }, log ? num(10 ** t, 2) : num(t, 3)));
      }
    } else {
      categories.forEach((c, i) => grid.append(s("text", { x: x(i), y: H - PAD.bottom + 16, class: "tick tick-x" }, label(JSON.parse(c)).slice(0, 14))));
    }
    grid.append(s("text", { x: PAD.left + plotW / 2, y: H - 4, class: "axis-label" }, `${path}${log ? " (log)" : ""}`));
    svg.append(grid);
    scored.forEach((t, i) => {
      svg.append(s("circle", { cx: x(xs[i]), cy: y(t.score), r: 4, class: "sweep-point", "data-index": t.index }, s("title", {}, `trial ${t.index}: ${label(values[i])} → ${num(t.score)}`)));
    });
  }
  return h("figure", { class: "chart-box" }, h("figcaption", {}, `${metric} by ${path}`), svg);
}

/** The `key` curve of each trial in `runs` ([{trial, history}]), overlaid, one colour each. */
export function bestCurves(runs, key) {
  const lines = runs.map(({ trial, history }) => ({
    trial,
    points: history.filter((e) => typeof e[key] === "number" && Number.isFinite(e[key])).map((e) => [e.epoch, e[key]]),
  })).filter((l) => l.points.length);
  const svg = s("svg", { viewBox: `0 0 ${CURVE_W} ${H}`, class: "chart", role: "img", "aria-label": `${key} of the best trials`, "data-curves": lines.length });
  const legend = h("ul", { class: "legend" });
  if (!lines.length) {
    svg.append(s("text", { x: CURVE_W / 2, y: H / 2, class: "chart-empty" }, "No finished trials yet"));
  } else {
    const all = lines.flatMap((l) => l.points);
    const xMax = Math.max(2, ...all.map((p) => p[0]));
    const plotW = CURVE_W - PAD.left - PAD.right;
    const plotH = H - PAD.top - PAD.bottom;
    const x = (v) => PAD.left + ((v - 1) / (xMax - 1)) * plotW;
    const { ticks, y } = yScale(all.map((p) => p[1]), PAD.top, plotH);
    const grid = s("g", { class: "grid" });
    for (const t of ticks) {
      if (y(t) < PAD.top - 1 || y(t) > PAD.top + plotH + 1) continue;
      grid.append(s("line", { x1: PAD.left, x2: CURVE_W - PAD.right, y1: y(t), y2: y(t) }), s("text", { x: PAD.left - 6, y: y(t) + 4, class: "tick tick-y" }, num(t, 3)));
    }
    for (const t of niceTicks(1, xMax, 6).filter(Number.isInteger)) grid.append(s("text", { x: x(t), y: H - PAD.bottom + 16, class: "tick tick-x" }, String(t)));
    grid.append(s("text", { x: PAD.left + plotW / 2, y: H - 4, class: "axis-label" }, "epoch"));
    svg.append(grid);
    lines.forEach(({ trial, points }, i) => {
      const color = rgb(classColor(i));
      const d = points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      svg.append(s("path", { d, class: "series", stroke: color, "data-trial": trial.index }));
      legend.append(h("li", {}, h("span", { class: "swatch", style: `background:${color}` }), `trial ${trial.index} (${num(trial.score)})`));
    });
  }
  return h("figure", { class: "chart-box" }, h("figcaption", {}, `${key} of the best trials`), svg, legend);
}
