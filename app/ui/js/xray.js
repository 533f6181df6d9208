// The X-ray of a job: a banner of findings; per-layer statistics over the epochs as
// small multiples (gradient norm, update ratio, dead or saturated share: one row each,
// one column per layer); the weight histograms of a chosen snapshot epoch; and the
// network with that epoch's dead units marked.

import { clear, h, s } from "./dom.js";
import { num, percent } from "./format.js";
import { drawNetwork } from "./netdraw.js";

const SPARK_W = 200;
const SPARK_H = 64;
const HIST_W = 200;
const HIST_H = 80;

const ROWS = [
  { key: "grad_norm", title: "Gradient norm ‖dL/dW‖", log: true, hint: "shrinking toward the first layer: vanishing gradients" },
  { key: "update_ratio", title: "Update ratio ‖ΔW‖ / ‖W‖ per epoch", log: true, hint: "about 1e-3 per step is healthy" },
  { key: "units", title: "Dead (relu) or saturated (sigmoid, tanh) share", percent: true, hint: "above 50% the layer barely learns" },
];

const KIND_TITLES = {
  overfitting: "Overfitting",
  dead_units: "Dead units",
  saturation: "Saturation",
  vanishing_gradients: "Vanishing gradients",
  exploding_gradients: "Exploding gradients",
  learning_rate_high: "Learning rate too high",
  learning_rate_low: "Learning rate too low",
};

/** A layer's dead share (relu family) or saturated share (sigmoid, tanh), else null. */
function unitShare(layer) {
  return layer.dead_fraction ?? layer.saturated_fraction ?? null;
}

function value(layer, key) {
  const v = key === "units" ? unitShare(layer) : layer[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** A sparkline of [epoch, value] points; log rows plot log10 of the positive values. */
function sparkline(points, { log = false, percent: isShare = false, label }) {
  const usable = points.filter(([, v]) => v !== null && (!log || v > 0));
  const svg = s("svg", { viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, class: "spark", role: "img", "aria-label": label, "data-points": String(usable.length) });
  if (!usable.length) {
    svg.append(s("text", { x: SPARK_W / 2, y: SPARK_H / 2, class: "chart-empty" }, "–"));
    return svg;
  }
  const ys = usable.map(([, v]) => (log ? Math.log10(v) : v));
  let lo = isShare ? 0 : Math.min(...ys);
  let hi = isShare ? 1 : Math.max(...ys);
  if (hi === lo) { lo -= 1; hi += 1; }
  const x0 = usable[0][0];
  const x1 = Math.max(x0 + 1, usable[usable.length - 1][0]);
  const px = (e) => 4 + ((e - x0) / (x1 - x0)) * (SPARK_W - 8);
  const py = (v) => 6 + (1 - (v - lo) / (hi - lo)) * (SPARK_H - 20);
  const d = usable.map(([e], i) => `${i ? "L" : "M"}${px(e).toFixed(1)},${py(ys[i]).toFixed(1)}`).join("");
  const last = usable[usable.length - 1][1];
  svg.append(
    s("path", { d, class: "spark-line" }),
    s("text", { x: SPARK_W - 4, y: SPARK_H - 3, class: "spark-value" }, isShare ? percent(last) : num(last, 3)),
  );
  return svg;
}

/** Bars of a weight histogram {low, high, counts}. */
function histogramChart(histogram, label) {
  const svg = s("svg", { viewBox: `0 0 ${HIST_W} ${HIST_H}`, class: "hist", role: "img", "aria-label": label });
  const counts = histogram?.counts ?? [];
  if (!counts.length) return svg;
  const top = Math.max(...counts, 1);
  const width = (HIST_W - 8) / counts.length;
  counts.forEach((c, i) => {
    const height = (c / top) * (HIST_H - 22);
    svg.append(s("rect", { x: 4 + i * width, y: HIST_H - 16 - height, width: Math.max(1, width - 1), height, class: "hist-bar" }, s("title", {}, String(c))));
  });
  svg.append(
    s("text", { x: 4, y: HIST_H - 3, class: "tick" }, num(histogram.low, 2)),
    s("text", { x: HIST_W - 4, y: HIST_H - 3, class: "tick tick-end" }, num(histogram.high, 2)),
  );
  return svg;
}

/** The findings as a banner (empty when there are none). */
export function findingsBanner(findings) {
  if (!findings?.length) return h("div", { class: "findings", hidden: true });
  return h(
    "div",
    { class: "findings", role: "status", "aria-label": "Findings" },
    h("strong", {}, findings.length === 1 ? "1 finding" : `${findings.length} findings`),
    h(
      "ul",
      {},
      findings.map((f) =>
        h(
          "li",
          { "data-kind": f.kind },
          h("b", {}, KIND_TITLES[f.kind] ?? f.kind),
          ` (epoch ${f.epoch}${f.layer ? `, layer ${f.layer}` : ""}): `,
          f.message,
        ),
      ),
    ),
  );
}

/**
 * The X-ray panel of a job page. network: the job's network ({input_size, layers}) or
 * null. update(history, findings) redraws from the whole history.
 */
export class XRay {
  constructor(network) {
    this.network = network;
    this.banner = h("div", { class: "findings-slot", "aria-live": "polite" });
    this.grid = h("div", { class: "xray-grid" });
    this.epochSelect = h("select", { name: "snapshot_epoch", "aria-label": "Epoch of the histograms" });
    this.epochSelect.addEventListener("change", () => this.drawSnapshot());
    this.histograms = h("div", { class: "xray-hists" });
    this.drawing = h("div", { class: "xray-net" });
    this.history = [];
    this.element = h(
      "section",
      { class: "card xray", "aria-label": "Layer statistics" },
      h("h2", {}, "Inside the network, layer by layer"),
      h("p", { class: "muted" }, "Per epoch, for each layer: the size of the gradient, how far the weights moved, and the share of dead or saturated units."),
      this.grid,
      h("div", { class: "xray-snapshot" }, h("h3", {}, "Weights of epoch ", this.epochSelect), this.histograms, this.drawing),
    );
    this.element.hidden = true;
  }

  update(history, findings) {
    this.history = history.filter((e) => Array.isArray(e.layers) && e.layers.length);
    this.banner.replaceChildren(findingsBanner(findings));
    this.element.hidden = this.history.length === 0;
    if (!this.history.length) return;
    const depth = this.history[this.history.length - 1].layers.length;
    const cells = [h("div", { class: "xray-corner" })];
    for (let l = 1; l <= depth; l++) {
      const act = this.network?.layers?.[l - 1]?.activation;
      cells.push(h("div", { class: "xray-head" }, `Layer ${l}${act ? ` · ${act}` : ""}`));
    }
    for (const row of ROWS) {
      cells.push(h("div", { class: "xray-row-title", title: row.hint }, row.title));
      for (let l = 0; l < depth; l++) {
        const points = this.history.map((e) => [e.epoch, e.layers[l] ? value(e.layers[l], row.key) : null]);
        cells.push(h("div", { class: "xray-cell", "data-stat": row.key, "data-layer": String(l + 1) }, sparkline(points, { ...row, label: `${row.title}, layer ${l + 1}` })));
      }
    }
    this.grid.style.gridTemplateColumns = `minmax(9rem, auto) repeat(${depth}, minmax(0, 1fr))`;
    this.grid.replaceChildren(...cells);
    const snapshots = this.history.filter((e) => e.layers.some((layer) => layer.histogram));
    const chosen = this.epochSelect.value;
    clear(this.epochSelect);
    for (const e of snapshots) this.epochSelect.append(h("option", { value: String(e.epoch) }, String(e.epoch)));
    const keep = snapshots.some((e) => String(e.epoch) === chosen);
    if (snapshots.length) this.epochSelect.value = keep ? chosen : String(snapshots[snapshots.length - 1].epoch);
    this.drawSnapshot();
  }

  drawSnapshot() {
    const entry = this.history.find((e) => String(e.epoch) === this.epochSelect.value);
    if (!entry) {
      this.histograms.replaceChildren(h("p", { class: "muted" }, "Histograms are kept every few epochs and for the last one."));
      this.drawing.replaceChildren();
      return;
    }
    this.histograms.replaceChildren(
      ...entry.layers.map((layer, i) =>
        h("figure", { class: "xray-hist" }, histogramChart(layer.histogram, `Weights of layer ${i + 1}, epoch ${entry.epoch}`), h("figcaption", {}, `W${i + 1}`)),
      ),
    );
    if (!this.network) return;
    const sizes = [this.network.input_size, ...this.network.layers.map((layer) => layer.units)];
    const dead = [null, ...entry.layers.map((layer) => (layer.dead_units ? new Set(layer.dead_units) : null))];
    const deadCount = dead.reduce((n, d) => n + (d ? d.size : 0), 0);
    const rectified = dead.some(Boolean);
    // The network is drawn only to show where dead units are (the model's own drawing,
    // with its weights, is further down the page).
    this.drawing.replaceChildren(
      deadCount ? drawNetwork({ sizes, activations: this.network.layers.map((layer) => layer.activation), dead }) : "",
      !rectified ? "" : h("p", { class: "muted" }, deadCount ? `${deadCount} dead unit${deadCount === 1 ? "" : "s"} in epoch ${entry.epoch}.` : `No dead units in epoch ${entry.epoch}.`),
    );
  }
}
