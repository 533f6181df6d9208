// The plots of an evaluation (POST /v1/models/{id}/evaluate): the confusion matrix as a
// heat map, a binary model's ROC curve, and predicted against actual for regression.
// Plain SVG; cells and points carry data-* attributes the tests read.

import { h, s } from "./dom.js";
import { POSITIVE, classColor, rgb, tint } from "./colors.js";
import { num, percent } from "./format.js";
import { niceTicks } from "./charts.js";

const SIDE = 320; // the square plots' width and height
const PAD = { left: 48, right: 12, top: 12, bottom: 40 };

/**
 * The confusion matrix (rows: true class, columns: predicted) as a grid of cells shaded
 * by the share of their row (the class's recall on the diagonal), each showing its count.
 */
export function confusionHeatmap(matrix, classes) {
  const k = classes.length;
  const cell = Math.max(28, Math.min(64, Math.floor(360 / k)));
  const label = 90;
  const width = label + k * cell;
  const height = label + k * cell;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "heatmap", role: "img", "aria-label": "Confusion matrix", "data-classes": k });
  svg.append(
    s("text", { x: label + (k * cell) / 2, y: 14, class: "axis-label" }, "predicted"),
    s("text", { x: 12, y: label + (k * cell) / 2, class: "axis-label", transform: `rotate(-90 12 ${label + (k * cell) / 2})` }, "true"),
  );
  classes.forEach((c, j) => {
    svg.append(s("text", { x: label + j * cell + cell / 2, y: label - 8, class: "tick tick-x" }, String(c).slice(0, 10)));
  });
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    svg.append(s("text", { x: label - 8, y: label + i * cell + cell / 2 + 4, class: "tick tick-y" }, String(classes[i]).slice(0, 10)));
    row.forEach((count, j) => {
      const share = total ? count / total : 0;
      const x = label + j * cell;
      const y = label + i * cell;
      svg.append(
        s("rect", { x, y, width: cell - 2, height: cell - 2, rx: 3, fill: rgb(tint(POSITIVE, share * 0.9)), class: "heat-cell", "data-count": count, "data-row": i, "data-column": j },
          s("title", {}, `true ${classes[i]}, predicted ${classes[j]}: ${count} (${percent(share)} of the row)`)),
        s("text", { x: x + cell / 2 - 1, y: y + cell / 2 + 4, class: share > 0.55 ? "heat-count dark" : "heat-count" }, String(count)),
      );
    });
  });
  return h("figure", { class: "chart-box" }, h("figcaption", {}, "Confusion matrix"), svg);
}

function squareAxes(svg, { xMin, xMax, yMin, yMax, xLabel, yLabel }) {
  const w = SIDE - PAD.left - PAD.right;
  const hgt = SIDE - PAD.top - PAD.bottom;
  const x = (v) => PAD.left + ((v - xMin) / (xMax - xMin || 1)) * w;
  const y = (v) => PAD.top + (1 - (v - yMin) / (yMax - yMin || 1)) * hgt;
  const grid = s("g", { class: "grid" });
  for (const t of niceTicks(yMin, yMax, 5).filter((t) => t >= yMin && t <= yMax)) {
    grid.append(s("line", { x1: PAD.left, x2: SIDE - PAD.right, y1: y(t), y2: y(t) }), s("text", { x: PAD.left - 6, y: y(t) + 4, class: "tick tick-y" }, num(t, 3)));
  }
  for (const t of niceTicks(xMin, xMax, 5).filter((t) => t >= xMin && t <= xMax)) {
    grid.append(s("text", { x: x(t), y: SIDE - PAD.bottom + 16, class: "tick tick-x" }, num(t, 3)));
  }
  grid.append(
    s("line", { x1: PAD.left, x2: SIDE - PAD.right, y1: PAD.top + hgt, y2: PAD.top + hgt, class: "axis" }),
    s("text", { x: PAD.left + w / 2, y: SIDE - 6, class: "axis-label" }, xLabel),
    s("text", { x: 12, y: PAD.top + hgt / 2, class: "axis-label", transform: `rotate(-90 12 ${PAD.top + hgt / 2})` }, yLabel),
  );
  svg.append(grid);
  return { x, y };
}

/** A binary model's ROC curve (fpr, tpr from 0 to 1) over the chance diagonal. */
export function rocPlot(curve, auc, positiveClass) {
  const svg = s("svg", { viewBox: `0 0 ${SIDE} ${SIDE}`, class: "chart roc", role: "img", "aria-label": "ROC curve", "data-points": curve.fpr.length });
  const { x, y } = squareAxes(svg, { xMin: 0, xMax: 1, yMin: 0, yMax: 1, xLabel: "false positive rate", yLabel: "true positive rate" });
  svg.append(s("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "chance" }));
  const d = curve.fpr.map((f, i) => `${i ? "L" : "M"}${x(f).toFixed(1)},${y(curve.tpr[i]).toFixed(1)}`).join("");
  svg.append(s("path", { d, class: "series s-train", "data-series": "roc" }));
  const caption = `ROC curve of ${positiveClass}${auc === null ? "" : ` (AUC ${num(auc, 4)})`}`;
  return h("figure", { class: "chart-box" }, h("figcaption", {}, caption), svg);
}

/** Predicted against actual for sampled rows (one colour per target), over y = x. */
export function scatterPlot(points) {
  const pairs = points.actual.flatMap((row, i) => row.map((a, t) => [a, points.predicted[i][t], t]));
  const values = pairs.flatMap(([a, p]) => [a, p]);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const svg = s("svg", { viewBox: `0 0 ${SIDE} ${SIDE}`, class: "chart scatter", role: "img", "aria-label": "Predicted against actual", "data-points": pairs.length });
  const { x, y } = squareAxes(svg, { xMin: lo, xMax: hi, yMin: lo, yMax: hi, xLabel: "actual", yLabel: "predicted" });
  svg.append(s("line", { x1: x(lo), y1: y(lo), x2: x(hi), y2: y(hi), class: "chance" }));
  for (const [a, p, t] of pairs) {
    svg.append(s("circle", { cx: x(a).toFixed(1), cy: y(p).toFixed(1), r: 2.5, fill: rgb(classColor(t), 0.6), class: "point" }));
  }
  return h("figure", { class: "chart-box" }, h("figcaption", {}, "Predicted against actual"), svg);
}
