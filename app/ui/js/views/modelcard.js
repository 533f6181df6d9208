// A model's card (the `card` object of GET /v1/models/{id}) and its export downloads
// (GET /v1/models/{id}/export?format=..., fetched with the key like every API call).

import { api } from "../api.js";
import { h } from "../dom.js";
import { architecture, num, percent } from "../format.js";
import { card, facts, link, notice, table, toast } from "../ui.js";

const EXPORTS = [
  { format: "onnx", label: "ONNX", suffix: "onnx", type: "application/octet-stream" },
  { format: "python", label: "Python", suffix: "py", type: "text/x-python" },
  { format: "npz", label: "npz", suffix: "npz", type: "application/octet-stream" },
];

/** Fetch /v1{path} with the key and hand it to the browser as a file named `filename`. */
export async function download(path, filename, type) {
  const buffer = await api(path, { as: "arrayBuffer", headers: { Accept: `${type}, application/json` } });
  const url = URL.createObjectURL(new Blob([buffer], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function downloadButton(text, path, filename, type) {
  const button = h("button", { type: "button", class: "button button-small" }, text);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await download(path, filename, type);
    } catch (error) {
      toast(error.message);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return button;
}

/** One button per export format, and the card as Markdown. */
export function exportButtons(model) {
  return h(
    "div",
    { class: "export-buttons", role: "group", "aria-label": "Export" },
    EXPORTS.map((e) => downloadButton(`Download ${e.label}`, `/models/${model.id}/export?format=${e.format}`, `${model.id}.${e.suffix}`, e.type)),
    downloadButton("Card (Markdown)", `/models/${model.id}/card`, `${model.id}-card.md`, "text/markdown"),
  );
}

function flatten(options, prefix = "") {
  return Object.entries(options).flatMap(([key, value]) =>
    value !== null && typeof value === "object" ? flatten(value, `${prefix}${key}.`) : [[`${prefix}${key}`, value]],
  );
}

function trainingData(data, c) {
  if (!data) {
    const why = c.lineage.job_id ? "its dataset has been deleted" : c.lineage.trained_here ? "the dataset is gone, or was not recorded with this model" : "the model was imported";
    return [notice(`Not recorded: ${why}.`)];
  }
  const parts = [
    facts([
      ["Dataset", link(`#/datasets/${data.dataset_id}`, data.name)],
      ["Shape", `${num(data.n_samples)} rows × ${data.n_features} features`],
      ["Labels", `${data.label_kind}, ${data.n_targets} target(s)`],
      ["Content hash (SHA-256)", h("code", { class: "id" }, data.sha256)],
      data.feature_names ? ["Features", data.feature_names.join(", ")] : null,
    ]),
  ];
  if (data.class_balance) {
    parts.push(
      table(
        [{ label: "Class" }, { label: "Rows", className: "num" }, { label: "Share", className: "num" }],
        data.class_balance.map((c) => h("tr", {}, h("td", {}, String(c.label)), h("td", { class: "num" }, num(c.count)), h("td", { class: "num" }, percent(c.fraction)))),
        { caption: "Class balance" },
      ),
    );
  }
  return parts;
}

function metricsTable(metrics) {
  const rows = [["Final (last epoch)", metrics.final]];
  if (metrics.best) rows.push([`Best (lowest ${metrics.best_by})`, metrics.best]);
  const names = [...new Set(rows.flatMap(([, entry]) => Object.keys(entry ?? {})))].filter((k) => !["seconds", "samples_per_second"].includes(k));
  if (!names.length) return notice("No metrics recorded.");
  return table(
    [{ label: "" }, ...names.map((n) => ({ label: n.replaceAll("_", " "), className: "num" }))],
    rows.map(([label, entry]) => h("tr", {}, h("th", { scope: "row" }, label), names.map((n) => h("td", { class: "num" }, num(entry?.[n]))))),
    { caption: "Metrics" },
  );
}

function evaluationsTable(evaluations) {
  if (!evaluations.length) return h("p", { class: "muted" }, "None yet: evaluate the model on a dataset above.");
  const names = [...new Set(evaluations.flatMap((e) => Object.keys(e.scores)))];
  return table(
    [{ label: "Dataset" }, { label: "Rows", className: "num" }, ...names.map((n) => ({ label: n.replaceAll("_", " "), className: "num" }))],
    evaluations.map((e) =>
      h(
        "tr",
        {},
        h("td", {}, e.dataset_id ? link(`#/datasets/${e.dataset_id}`, e.dataset_id) : "deleted"),
        h("td", { class: "num" }, num(e.n_samples)),
        names.map((n) => h("td", { class: "num" }, num(e.scores[n]))),
      ),
    ),
    { caption: "Evaluations on the card" },
  );
}

/** The "Model card" section of a model's page, with the export buttons on top. */
export function modelCardSection(model) {
  const c = model.card;
  const lineage = c.lineage;
  return card(
    "Model card",
    exportButtons(model),
    facts([
      ["Architecture", architecture(c.architecture)],
      ["Parameters", num(c.parameter_count)],
      ["Loss", c.architecture.loss],
      ["Standardised inputs", c.standardize ? "yes" : "no"],
      ["Backprop version", c.backprop_version],
      ["Made", new Date(c.created_at).toLocaleString()],
    ]),
    h("h3", {}, "Training data"),
    trainingData(c.training_data, c),
    h("h3", {}, "Training options"),
    c.training_options
      ? facts(flatten(c.training_options).map(([k, v]) => [k, h("span", { class: "mono" }, JSON.stringify(v))]))
      : notice("None: the model was not trained by a job here."),
    h("h3", {}, "Metrics"),
    metricsTable(c.metrics),
    c.metrics.weights_epoch ? h("p", { class: "muted" }, `The model holds the weights of epoch ${c.metrics.weights_epoch}.`) : null,
    h("h3", {}, "Evaluations"),
    evaluationsTable(c.evaluations),
    h("h3", {}, "Lineage"),
    facts([
      ["Training job", lineage.job_id ? link(`#/jobs/${lineage.job_id}`, lineage.job_id) : lineage.trained_here ? "none (trained here; no job holds it now)" : "none (imported)"],
      ["Initial model", lineage.initial_model_id ? link(`#/models/${lineage.initial_model_id}`, lineage.initial_model_id) : "none"],
      ["Sweep", lineage.sweep_id ?? "none"],
    ]),
  );
}
