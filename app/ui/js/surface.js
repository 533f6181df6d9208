// The decision surface of a model over a 2-D dataset: predict on a grid, paint the
// outputs as a heat-map on a canvas, and draw the data points on top.

import { api } from "./api.js";
import { classColor, diverging, rgb, tint } from "./colors.js";
import { h } from "./dom.js";
import { num } from "./format.js";

const GRID = 64; // 64 × 64 = 4096 predictions per render
const SIZE = 440; // CSS pixels of the square plot

function bounds(points, stats) {
  const lo = [0, 1].map((d) => (points ? Math.min(...points.map((p) => p[d])) : stats?.min?.[d] ?? -1));
  const hi = [0, 1].map((d) => (points ? Math.max(...points.map((p) => p[d])) : stats?.max?.[d] ?? 1));
  return [0, 1].map((d) => {
    const span = hi[d] - lo[d] || 1;
    return [lo[d] - span * 0.08, hi[d] + span * 0.08];
  });
}

/**
 * A square canvas showing data points (x: (n, 2), labels y) and, optionally, a model's
 * decision surface. render() can be called again (e.g. when a newer model exists).
 */
export class SurfacePlot {
  constructor({ featureNames = ["x₁", "x₂"] } = {}) {
    this.featureNames = featureNames;
    this.canvas = h("canvas", { class: "surface", role: "img", "aria-label": "Data points" });
    this.caption = h("figcaption", {}, "Data points");
    this.legend = h("ul", { class: "legend" });
    this.element = h("figure", { class: "surface-box" }, this.caption, this.canvas, this.legend);
  }

  /**
   * data: {x: number[][], y: any[]} (points to draw), classes: dataset classes or null
   * (continuous targets), stats: dataset stats (used when there are no points),
   * model: {id, task, classes} or null.
   */
  async render({ data, classes, stats, model = null, signal }) {
    const points = data?.x?.length ? data.x : null;
    const [bx, by] = bounds(points, stats);
    let outputs = null;
    if (model) {
      const rows = [];
      for (let j = 0; j < GRID; j++) {
        const v = by[1] - ((j + 0.5) / GRID) * (by[1] - by[0]);
        for (let i = 0; i < GRID; i++) rows.push([bx[0] + ((i + 0.5) / GRID) * (bx[1] - bx[0]), v]);
      }
      outputs = (await api(`/models/${model.id}/predict`, { method: "POST", json: { x: rows }, signal })).outputs;
    }
    if (signal?.aborted) return;
    const classIndex = new Map((classes ?? []).map((c, i) => [String(c), i]));
    const yValues = classes ? null : (data?.y ?? []).map(Number).filter(Number.isFinite);
    const yRange = yValues?.length ? [Math.min(...yValues), Math.max(...yValues)] : null;
    this.draw({ bx, by, points, labels: data?.y ?? [], outputs, model, classIndex, yRange });
    this.describe({ model, classes, yRange, count: points?.length ?? 0 });
  }

  draw({ bx, by, points, labels, outputs, model, classIndex, yRange }) {
    const dpr = window.devicePixelRatio || 1;
    const canvas = this.canvas;
    canvas.width = Math.round(SIZE * dpr);
    canvas.height = Math.round(SIZE * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, SIZE, SIZE);
    const px = (v) => ((v - bx[0]) / (bx[1] - bx[0])) * SIZE;
    const py = (v) => (1 - (v - by[0]) / (by[1] - by[0])) * SIZE;

    if (outputs) {
      const image = new ImageData(GRID, GRID);
      outputs.forEach((out, k) => {
        const [r, g, b] = this.cellColor(out, model, classIndex, yRange);
        image.data.set([r, g, b, 255], k * 4);
      });
      const tile = document.createElement("canvas");
      tile.width = GRID;
      tile.height = GRID;
      tile.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(tile, 0, 0, SIZE, SIZE);
    }

    // Light axis ticks along the edges.
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "rgba(15, 23, 42, 0.55)";
    ctx.strokeStyle = "rgba(15, 23, 42, 0.12)";
    for (const [d, range] of [[0, bx], [1, by]]) {
      const step = (range[1] - range[0]) / 4;
      for (let i = 1; i < 4; i++) {
        const v = range[0] + i * step;
        ctx.beginPath();
        if (d === 0) {
          ctx.moveTo(px(v), 0);
          ctx.lineTo(px(v), SIZE);
          ctx.stroke();
          ctx.fillText(num(v, 2), px(v) + 3, SIZE - 4);
        } else {
          ctx.moveTo(0, py(v));
          ctx.lineTo(SIZE, py(v));
          ctx.stroke();
          ctx.fillText(num(v, 2), 4, py(v) - 3);
        }
      }
    }

    if (points) {
      for (let i = 0; i < points.length; i++) {
        const color = this.pointColor(labels[i], classIndex, yRange);
        ctx.beginPath();
        ctx.arc(px(points[i][0]), py(points[i][1]), 3.6, 0, Math.PI * 2);
        ctx.fillStyle = rgb(color);
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = "rgba(255,255,255,0.9)";
        ctx.stroke();
      }
    }
    ctx.strokeStyle = "rgba(15, 23, 42, 0.25)";
    ctx.strokeRect(0.5, 0.5, SIZE - 1, SIZE - 1);
  }

  cellColor(out, model, classIndex, yRange) {
    const colorOf = (k) => classColor(classIndex.get(String(model.classes?.[k])) ?? k);
    if (model.task === "binary" || (model.task !== "regression" && out.length === 1)) {
      const t = (out[0] - 0.5) * 2; // -1 .. 1
      return tint(colorOf(t >= 0 ? 1 : 0), Math.min(1, Math.abs(t)) * 0.7);
    }
    if (model.task === "multiclass" || (model.task !== "regression" && model.classes)) {
      let best = 0;
      for (let k = 1; k < out.length; k++) if (out[k] > out[best]) best = k;
      const confidence = (out[best] - 1 / out.length) / (1 - 1 / out.length);
      return tint(colorOf(best), Math.max(0, confidence) * 0.7);
    }
    const [lo, hi] = yRange ?? [-1, 1];
    return diverging(((out[0] - lo) / (hi - lo || 1)) * 2 - 1, 0.75);
  }

  pointColor(label, classIndex, yRange) {
    if (classIndex.size) return classColor(classIndex.get(String(label)) ?? 0);
    const [lo, hi] = yRange ?? [-1, 1];
    return diverging(((Number(label) - lo) / (hi - lo || 1)) * 2 - 1, 1);
  }

  describe({ model, classes, yRange, count }) {
    const what = model ? `Decision surface of model ${model.id}` : "Data points";
    this.caption.textContent = `${what} · ${count} points · ${this.featureNames[0]} across, ${this.featureNames[1]} up`;
    this.canvas.setAttribute("aria-label", this.caption.textContent);
    this.canvas.dataset.model = model ? model.id : "";
    this.legend.replaceChildren(
      ...(classes ?? []).map((c, i) => {
        const swatch = h("span", { class: "swatch" });
        swatch.style.background = rgb(classColor(i));
        return h("li", {}, swatch, `class ${c}`);
      }),
    );
    if (!classes && yRange) {
      this.legend.append(
        h("li", {}, h("span", { class: "swatch swatch-negative" }), `low (${num(yRange[0], 3)})`),
        h("li", {}, h("span", { class: "swatch swatch-positive" }), `high (${num(yRange[1], 3)})`),
      );
    }
  }
}
