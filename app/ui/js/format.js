// Number, date and label formatting shared by the views.

import { h } from "./dom.js";

export function num(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  const seconds = (Date.now() - date.getTime()) / 1000;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function whenTitle(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function statusBadge(status, cancelRequested = false) {
  const text = cancelRequested && status === "running" ? "cancelling" : status;
  return h("span", { class: `badge badge-${text}`, "data-status": text }, text);
}

/** "2 → 8 relu → 1 sigmoid" from a network config {input_size, layers}. */
export function architecture(config) {
  if (!config || !config.layers) return "–";
  return [String(config.input_size), ...config.layers.map((l) => `${l.units} ${l.activation}`)].join(" → ");
}

/** The headline metric of a metrics/history entry, validation first: "93.3% val. accuracy". */
const HEADLINES = [
  ["val_accuracy", "val. accuracy"],
  ["accuracy", "accuracy"],
  ["val_r2", "val. R²"],
  ["r2", "R²"],
  ["val_loss", "val. loss"],
  ["loss", "loss"],
];

export function headlineMetric(metrics) {
  const found = HEADLINES.find(([key]) => typeof metrics?.[key] === "number");
  if (!found) return null;
  const [key, label] = found;
  return `${key.endsWith("accuracy") ? percent(metrics[key]) : num(metrics[key])} ${label}`;
}
