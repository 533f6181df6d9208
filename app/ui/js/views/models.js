// Models: the list; a model's page with its card and exports, its evaluations, its batch
// prediction runs, its
// weights drawn, its decision surface and a predict form.

import { api, listAll } from "../api.js";
import { field, h } from "../dom.js";
import { architecture, headlineMetric, num, when, whenTitle } from "../format.js";
import { drawNetwork } from "../netdraw.js";
import { layerArrays, parseNpz } from "../npz.js";
import { SurfacePlot } from "../surface.js";
import { card, deleteButton, errorBox, facts, link, notice, onSubmit, pageHeader, table } from "../ui.js";
import { evaluationSection } from "./evaluation.js";
import { predictionSection } from "./predictions.js";
import { modelCardSection } from "./modelcard.js";

const SCATTER_ROWS = 2000;

export async function modelsPage(main, { signal }) {
  const list = h("div", {});
  const load = async () => {
    const models = await listAll("/models", { signal });
    list.replaceChildren(
      table(
        [{ label: "Model" }, { label: "Layers" }, { label: "Task" }, { label: "Metrics" }, { label: "Parameters", className: "num" }, { label: "Created" }, { label: "", className: "actions-col" }],
        models.map((m) =>
          h(
            "tr",
            {},
            h("td", {}, link(`#/models/${m.id}`, m.id), m.job_id ? h("div", { class: "id" }, `from ${m.job_id}`) : h("div", { class: "id" }, "imported")),
            h("td", {}, architecture(m.architecture)),
            h("td", {}, m.task),
            h("td", {}, headlineMetric(m.metrics) ?? "–"),
            h("td", { class: "num" }, num(m.parameter_count)),
            h("td", { title: whenTitle(m.created_at) }, when(m.created_at)),
            h("td", { class: "actions-col" }, deleteButton({ what: "model", name: m.id, id: m.id, path: `/models/${m.id}`, after: load })),
          ),
        ),
        { caption: "Models", emptyText: "No models yet: they are made by training jobs." },
      ),
    );
  };
  main.append(pageHeader("Models", "Trained networks, ready to predict."), card("Your models", list));
  await load();
}

function outputNames(model) {
  if (model.task === "binary" && model.classes) return [`P(${model.classes[1]})`];
  if (model.task === "multiclass" && model.classes) return model.classes.map(String);
  return [];
}

/**
 * The decision surface (2-feature datasets) and the weight drawing of a model, side by
 * side, into container.
 */
export async function modelVisuals(container, { modelId, datasetId, signal, model = null }) {
  model ??= await api(`/models/${modelId}`, { signal });
  const arch = model.architecture;
  const dataset = datasetId ? await api(`/datasets/${datasetId}`, { signal }).catch(() => null) : null;
  const featureNames = dataset?.feature_names ?? Array.from({ length: arch.input_size }, (_, i) => `x${i + 1}`);
  const surfaceErrors = errorBox();
  const netSlot = h("div", { class: "netdraw-slot" }, h("p", { class: "muted" }, "Loading weights…"));
  const cards = [];
  let plot = null;
  if (dataset && dataset.n_features === 2 && arch.input_size === 2) {
    plot = new SurfacePlot({ featureNames });
    cards.push(card("Decision surface", surfaceErrors, plot.element));
  }
  cards.push(card("Network and weights", netSlot));
  container.replaceChildren(h("div", { class: plot ? "grid-2 grid-wide-right" : "" }, cards));

  const drawWeights = async () => {
    const buffer = await api(`/models/${model.id}/weights`, { signal, as: "arrayBuffer", headers: { Accept: "application/octet-stream" } });
    const { weights, biases } = layerArrays(await parseNpz(buffer));
    netSlot.replaceChildren(
      drawNetwork({
        sizes: [arch.input_size, ...arch.layers.map((l) => l.units)],
        activations: arch.layers.map((l) => l.activation),
        weights,
        biases,
        inputNames: featureNames,
        outputNames: outputNames(model),
      }),
    );
  };
  const drawSurface = async () => {
    const data = await api(`/datasets/${dataset.id}/data?limit=${SCATTER_ROWS}`, { signal });
    await plot.render({ data, classes: dataset.classes, stats: dataset.stats, model, signal });
  };
  await Promise.all([
    drawWeights().catch((error) => {
      if (error.name !== "AbortError") netSlot.replaceChildren(notice(`Could not draw the weights: ${error.message}`, "error"));
    }),
    plot ? drawSurface().catch((error) => error.name !== "AbortError" && surfaceErrors.show(error)) : null,
  ]);
}

function parseRows(text, width) {
  const lines = text.split(/\n/).map((l) => l.trim()).filter(Boolean);
  if (!lines.length) throw new Error("Enter at least one row of inputs.");
  return lines.map((line, i) => {
    const cells = line.split(/[,;\s]+/).filter(Boolean);
    const row = cells.map((c) => {
      const v = Number(c);
      if (!Number.isFinite(v)) throw new Error(`Row ${i + 1}: “${c}” is not a number.`);
      return v;
    });
    if (row.length !== width) throw new Error(`Row ${i + 1} has ${row.length} values; the model takes ${width}.`);
    return row;
  });
}

function predictForm(model, sampleRows, featureNames) {
  const width = model.architecture.input_size;
  const errors = errorBox();
  const results = h("div", { "aria-live": "polite" });
  const input = h("textarea", { name: "rows", rows: 5, spellcheck: "false", required: true, class: "mono" });
  input.value = sampleRows.map((r) => r.map((v) => num(v, 4)).join(", ")).join("\n");
  const form = h(
    "form",
    { class: "form", "aria-label": "Predict" },
    field("Inputs", input, `One row per line, ${width} comma-separated numbers (${featureNames.join(", ")}).`),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Predict")),
    results,
  );
  onSubmit(form, errors, async (data) => {
    const x = parseRows(String(data.get("rows")), width);
    const answer = await api(`/models/${model.id}/predict`, { method: "POST", json: { x } });
    results.replaceChildren(
      table(
        [{ label: "#", className: "num" }, { label: "Inputs" }, { label: "Outputs" }, ...(answer.labels ? [{ label: "Label" }] : [])],
        x.map((row, i) =>
          h(
            "tr",
            {},
            h("td", { class: "num" }, String(i + 1)),
            h("td", { class: "mono" }, row.map((v) => num(v)).join(", ")),
            h("td", { class: "mono" }, answer.outputs[i].map((v) => num(v)).join(", ")),
            answer.labels ? h("td", {}, h("strong", {}, String(answer.labels[i]))) : null,
          ),
        ),
        { caption: "Predictions" },
      ),
    );
  });
  return form;
}

export async function modelPage(main, { params: [id], signal }) {
  const model = await api(`/models/${id}`, { signal });
  const job = model.job_id ? await api(`/jobs/${model.job_id}`, { signal }).catch(() => null) : null;
  const datasetId = job?.dataset_id ?? null;
  const sample = datasetId ? await api(`/datasets/${datasetId}/data?limit=3`, { signal }).catch(() => null) : null;
  const width = model.architecture.input_size;
  const rows = sample?.x?.length && sample.x[0].length === width ? sample.x : [Array(width).fill(0)];
  const featureNames = model.card.training_data?.feature_names ?? Array.from({ length: width }, (_, i) => `x${i + 1}`);
  const metrics = Object.entries(model.metrics ?? {}).filter(([, v]) => typeof v === "number");
  const visuals = h("div", { class: "visuals" });
  const evaluate = h("div", { class: "evaluate-slot" });
  const batch = h("div", { class: "predictions-slot" });
  let cardSection = modelCardSection(model);
  // A new evaluation is listed on the card too: redraw the card from the model's new state.
  const refreshCard = async () => {
    const fresh = await api(`/models/${id}`, { signal });
    const next = modelCardSection(fresh);
    cardSection.replaceWith(next);
    cardSection = next;
  };
  main.append(
    pageHeader(
      `Model ${model.id}`,
      `${model.task} · ${architecture(model.architecture)}`,
      model.network_id ? h("a", { class: "button button-primary", href: `#/jobs?network=${model.network_id}&init_model=${model.id}${datasetId ? `&dataset=${datasetId}` : ""}` }, "Train further") : null,
    ),
    h(
      "div",
      { class: "grid-2" },
      card(
        "Summary",
        facts([
          ["Task", model.task],
          model.classes ? ["Classes", model.classes.map(String).join(", ")] : null,
          ["Parameters", num(model.parameter_count)],
          ["Standardised inputs", model.standardize ? "yes" : "no"],
          ["Trained by", model.job_id ? link(`#/jobs/${model.job_id}`, model.job_id) : "imported"],
          ["Network", model.network_id ? link(`#/networks/${model.network_id}`, model.network_id) : "–"],
          ["Created", new Date(model.created_at).toLocaleString()],
        ]),
        metrics.length
          ? [h("h3", {}, "Final metrics"), facts(metrics.map(([k, v]) => [k.replaceAll("_", " "), num(v)]))]
          : null,
      ),
      card("Predict", predictForm(model, rows, featureNames)),
    ),
    evaluate,
    batch,
    cardSection,
    visuals,
  );
  await Promise.all([
    evaluationSection(model, { signal, onEvaluated: refreshCard }).then((section) => evaluate.replaceChildren(section)),
    predictionSection(model, { signal }).then((section) => batch.replaceChildren(section)),
    modelVisuals(visuals, { modelId: id, datasetId, signal, model }),
  ]);
}
