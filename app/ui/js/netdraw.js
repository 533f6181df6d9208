// The network as layers of neurons joined by weighted connections (SVG): line width
// and opacity by |w|, blue for positive and orange for negative weights; neuron fill
// by bias. Wide layers are summarised by their strongest units. Dead units (a set per
// layer, from a job's layer statistics) are drawn grey and crossed.

import { NEGATIVE, POSITIVE, rgb, tint } from "./colors.js";
import { h, s } from "./dom.js";
import { num } from "./format.js";

const FULL_LAYER = 32; // layers up to this many units are drawn in full ...
const FULL_TOTAL = 300; // ... when the whole network has at most this many units
const SUMMARY_UNITS = 16; // otherwise a layer shows its strongest units
const HEIGHT = 420;
const LAYER_GAP = 170;
const MARGIN_X = 90;
const MARGIN_Y = 34;
const TITLED_LINES = 1500; // per-line tooltips only when there are not too many lines

function weightAt(W, i, j) {
  return W.data[i * W.shape[1] + j];
}

/** Indices of the units to draw in each layer (all, or the strongest ones). */
function visibleUnits(sizes, weights) {
  const total = sizes.reduce((a, b) => a + b, 0);
  return sizes.map((n, l) => {
    if (n <= FULL_LAYER && total <= FULL_TOTAL) return [...Array(n).keys()];
    const score = new Float64Array(n);
    if (weights) {
      // Strength of a unit: sum of |w| on its incoming and outgoing connections.
      const incoming = weights[l - 1];
      const outgoing = weights[l];
      if (incoming) for (let i = 0; i < n; i++) for (let j = 0; j < incoming.shape[1]; j++) score[i] += Math.abs(weightAt(incoming, i, j));
      if (outgoing) for (let i = 0; i < outgoing.shape[0]; i++) for (let j = 0; j < n; j++) score[j] += Math.abs(weightAt(outgoing, i, j));
    }
    const keep = Math.min(n, SUMMARY_UNITS);
    const order = [...Array(n).keys()].sort((a, b) => score[b] - score[a] || a - b);
    return order.slice(0, keep).sort((a, b) => a - b);
  });
}

/**
 * sizes: [n0, n1, ..., nL]; activations: [act1..actL]; weights/biases (optional):
 * [{shape: [n[l], n[l-1]], data}] as parsed from the model's npz. inputNames and
 * outputNames label the first and last columns. dead (optional): [null, Set of unit
 * indices of layer 1, ..., of layer L].
 */
export function drawNetwork({ sizes, activations = [], weights = null, biases = null, inputNames = [], outputNames = [], dead = null }) {
  const shown = visibleUnits(sizes, weights);
  const width = MARGIN_X * 2 + LAYER_GAP * (sizes.length - 1);
  const tallest = Math.max(...shown.map((u) => u.length));
  const spacing = Math.min(44, (HEIGHT - 2 * MARGIN_Y) / Math.max(1, tallest));
  const radius = Math.max(3, Math.min(13, spacing * 0.36));
  const pos = shown.map((units, l) => {
    const x = MARGIN_X + l * LAYER_GAP;
    const top = HEIGHT / 2 - ((units.length - 1) * spacing) / 2;
    return new Map(units.map((u, k) => [u, [x, top + k * spacing]]));
  });

  let maxW = 0;
  if (weights) for (const W of weights) for (const v of W.data) maxW = Math.max(maxW, Math.abs(v));
  let maxB = 0;
  if (biases) for (const b of biases) if (b) for (const v of b.data) maxB = Math.max(maxB, Math.abs(v));

  const lines = [];
  for (let l = 1; l < sizes.length; l++) {
    for (const [i, [x2, y2]] of pos[l]) {
      for (const [j, [x1, y1]] of pos[l - 1]) {
        const w = weights ? weightAt(weights[l - 1], i, j) : null;
        lines.push({ l, i, j, x1, y1, x2, y2, w });
      }
    }
  }
  // Strong connections on top of weak ones.
  if (weights) lines.sort((a, b) => Math.abs(a.w) - Math.abs(b.w));
  const titled = lines.length <= TITLED_LINES;
  const edgeGroup = s("g", { class: "edges" });
  for (const e of lines) {
    const attrs = { x1: e.x1, y1: e.y1, x2: e.x2, y2: e.y2 };
    if (e.w === null) {
      attrs.class = "edge edge-plain";
    } else {
      const t = maxW ? Math.abs(e.w) / maxW : 0;
      attrs.stroke = rgb(e.w >= 0 ? POSITIVE : NEGATIVE);
      attrs["stroke-width"] = (0.4 + 3.6 * t).toFixed(2);
      attrs["stroke-opacity"] = (0.15 + 0.85 * t).toFixed(2);
      attrs.class = "edge";
    }
    edgeGroup.append(
      s("line", attrs, titled && e.w !== null ? s("title", {}, `W${e.l}[${e.i}, ${e.j}] = ${num(e.w)}`) : null),
    );
  }

  const nodeGroup = s("g", { class: "nodes" });
  const labelGroup = s("g", { class: "labels" });
  pos.forEach((units, l) => {
    for (const [u, [x, y]] of units) {
      const b = l > 0 && biases?.[l - 1] ? biases[l - 1].data[u] : null;
      const fill = b === null ? "#ffffff" : rgb(tint(b >= 0 ? POSITIVE : NEGATIVE, maxB ? (Math.abs(b) / maxB) * 0.85 : 0));
      const isDead = Boolean(dead?.[l]?.has(u));
      const name = l === 0 ? `input ${inputNames[u] ?? u}` : `layer ${l} unit ${u}${isDead ? " (dead)" : ""}`;
      nodeGroup.append(
        s(
          "circle",
          { cx: x, cy: y, r: radius, fill: isDead ? "#d4d4d4" : fill, class: l === 0 ? "node node-input" : isDead ? "node node-dead" : "node" },
          s("title", {}, b === null ? name : `${name}, bias ${num(b)}`),
        ),
      );
      if (isDead) {
        const k = radius * 0.6;
        nodeGroup.append(s("path", { d: `M${x - k},${y - k}L${x + k},${y + k}M${x - k},${y + k}L${x + k},${y - k}`, class: "dead-cross" }));
      }
      const outer = l === 0 ? inputNames[u] : l === sizes.length - 1 ? outputNames[u] : null;
      if (outer !== undefined && outer !== null && units.size <= 16) {
        labelGroup.append(
          s(
            "text",
            { x: l === 0 ? x - radius - 6 : x + radius + 6, y: y + 4, class: l === 0 ? "unit-label unit-label-in" : "unit-label" },
            String(outer),
          ),
        );
      }
    }
    const x = MARGIN_X + l * LAYER_GAP;
    const kind = l === 0 ? "Input" : l === sizes.length - 1 ? "Output" : `Hidden ${l}`;
    const act = l > 0 ? ` · ${activations[l - 1] ?? ""}` : "";
    labelGroup.append(s("text", { x, y: HEIGHT - 8, class: "layer-label" }, `${kind}: ${sizes[l]}${act}`));
    if (units.size < sizes[l]) {
      labelGroup.append(s("text", { x, y: 16, class: "layer-note" }, `${units.size} of ${sizes[l]} shown`));
    }
  });

  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${width} ${HEIGHT}`,
      class: "netdraw",
      role: "img",
      "aria-label": `Network ${sizes.join("-")}${weights ? " with trained weights" : ""}`,
      "data-units": String(sizes.reduce((a, b) => a + b, 0)),
    },
    edgeGroup,
    nodeGroup,
    labelGroup,
  );
  const summarised = shown.some((u, l) => u.length < sizes[l]);
  const legend = h(
    "p",
    { class: "netdraw-legend" },
    weights
      ? [
          h("span", { class: "swatch swatch-positive" }), "positive weight ",
          h("span", { class: "swatch swatch-negative" }), "negative weight · line width ∝ |w|, neuron colour = bias",
        ]
      : dead
        ? "The units of the chosen epoch: dead ones (z ≤ 0 for every sample) grey and crossed."
        : "Architecture only (weights appear once the network has been trained).",
    summarised ? ` · Wide layers show their ${SUMMARY_UNITS} strongest units.` : "",
  );
  return h("figure", { class: "netdraw-box" }, h("div", { class: "netdraw-scroll" }, svg), legend);
}
