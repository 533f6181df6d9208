// Networks: a layer-by-layer builder with a live drawing; a network's page.

import { api, listAll } from "../api.js";
import { field, h, select } from "../dom.js";
import { architecture, headlineMetric, num, when, whenTitle } from "../format.js";
import { drawNetwork } from "../netdraw.js";
import { card, deleteButton, errorBox, facts, link, numberInput, onSubmit, pageHeader, table, textInput, toast } from "../ui.js";
import { jobForm } from "./jobs.js";

export const ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu", "linear", "softmax"];
const LOSSES = [
  ["", "Automatic (fits the output layer)"],
  ["binary_crossentropy", "Binary cross-entropy"],
  ["categorical_crossentropy", "Categorical cross-entropy"],
  ["mse", "Mean squared error"],
];

export function parameterCount(inputSize, layers) {
  let count = 0;
  let previous = inputSize;
  for (const layer of layers) {
    count += layer.units * (previous + 1);
    previous = layer.units;
  }
  return count;
}

/** The output layer that fits a dataset's labels. */
export function outputLayerFor(ds) {
  if (ds.label_kind === "categorical") {
    const k = ds.classes?.length ?? 2;
    return k <= 2 ? { units: 1, activation: "sigmoid" } : { units: k, activation: "softmax" };
  }
  return { units: ds.n_targets || 1, activation: "linear" };
}

function builder(datasets, preselected, navigate) {
  const errors = errorBox();
  const state = { inputSize: 2, layers: [{ units: 8, activation: "tanh" }, { units: 8, activation: "tanh" }, { units: 1, activation: "sigmoid" }] };
  const inputSize = numberInput("input_size", 2, { min: 1, step: 1 });
  const rows = h("ol", { class: "layer-rows" });
  const preview = h("div", { class: "preview" });
  const paramText = h("p", { class: "muted", "aria-live": "polite" });
  const datasetChoice = select("fit_dataset", [["", "—"], ...datasets.map((d) => [d.id, `${d.name} (${d.n_features} features, ${d.id})`])], preselected ?? "");

  const refreshPreview = () => {
    const valid = state.inputSize >= 1 && state.layers.every((l) => l.units >= 1);
    const tooBig = state.inputSize + state.layers.reduce((a, l) => a + l.units, 0) > 5000;
    preview.replaceChildren(
      valid && !tooBig
        ? drawNetwork({ sizes: [state.inputSize, ...state.layers.map((l) => l.units)], activations: state.layers.map((l) => l.activation) })
        : h("p", { class: "muted" }, valid ? "Too many units to preview." : "Give every layer at least one unit."),
    );
    paramText.textContent = valid ? `${num(parameterCount(state.inputSize, state.layers))} parameters (weights and biases)` : "";
  };

  const renderRows = () => {
    rows.replaceChildren(
      ...state.layers.map((layer, i) => {
        const last = i === state.layers.length - 1;
        const title = last ? "Output layer" : `Hidden layer ${i + 1}`;
        const units = numberInput(`units_${i}`, layer.units, { min: 1, step: 1 });
        units.addEventListener("input", () => { layer.units = Number(units.value); refreshPreview(); });
        const activation = select(`activation_${i}`, ACTIVATIONS, layer.activation);
        activation.addEventListener("change", () => { layer.activation = activation.value; refreshPreview(); });
        const remove = h("button", { type: "button", class: "button button-quiet button-small", "aria-label": `Remove ${title.toLowerCase()}`, disabled: state.layers.length === 1 }, "Remove");
        remove.addEventListener("click", () => { state.layers.splice(i, 1); renderRows(); });
        return h(
          "li",
          { class: "layer-row" },
          h("span", { class: "layer-title" }, title),
          field(["Units", h("span", { class: "visually-hidden" }, ` (${title.toLowerCase()})`)], units),
          field(["Activation", h("span", { class: "visually-hidden" }, ` (${title.toLowerCase()})`)], activation),
          remove,
        );
      }),
    );
    refreshPreview();
  };

  const fitTo = (id) => {
    const ds = datasets.find((d) => d.id === id);
    if (!ds) return;
    state.inputSize = ds.n_features;
    inputSize.value = String(ds.n_features);
    state.layers[state.layers.length - 1] = outputLayerFor(ds);
    renderRows();
  };
  inputSize.addEventListener("input", () => { state.inputSize = Number(inputSize.value); refreshPreview(); });
  datasetChoice.addEventListener("change", () => fitTo(datasetChoice.value));

  const addLayer = h("button", { type: "button", class: "button button-small" }, "Add hidden layer");
  addLayer.addEventListener("click", () => {
    state.layers.splice(Math.max(0, state.layers.length - 1), 0, { units: 8, activation: "tanh" });
    renderRows();
    rows.querySelectorAll("input")[state.layers.length - 2]?.focus();
  });

  const form = h(
    "form",
    { class: "form", "aria-label": "Define a network" },
    h(
      "div",
      { class: "form-row" },
      field("Name", textInput("name", "net", { required: true, maxlength: 200 })),
      field("Shape it for dataset", datasetChoice, "Sets the input size and the output layer"),
    ),
    h("div", { class: "form-row" }, field("Input size", inputSize, "Features per sample")),
    h("fieldset", {}, h("legend", {}, "Layers"), rows, addLayer),
    h(
      "div",
      { class: "form-row" },
      field("Loss", select("loss", LOSSES, "")),
      field("Seed", numberInput("seed", 0, { min: 0, step: 1 }), "Initial weights"),
    ),
    paramText,
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Create network")),
  );
  onSubmit(form, errors, async (data) => {
    const body = {
      name: String(data.get("name")).trim(),
      input_size: state.inputSize,
      layers: state.layers.map((l) => ({ units: l.units, activation: l.activation })),
      seed: Number(data.get("seed")),
    };
    if (data.get("loss")) body.loss = data.get("loss");
    const net = await api("/networks", { method: "POST", json: body });
    toast(`Network ${net.name} created.`);
    const ds = datasetChoice.value;
    navigate(`#/networks/${net.id}${ds ? `?dataset=${ds}` : ""}`);
  });
  renderRows();
  if (preselected) fitTo(preselected);
  return h("div", { class: "grid-2" }, form, h("div", {}, h("h3", {}, "Preview"), preview));
}

export async function networksPage(main, { signal, query, navigate }) {
  const [datasets, networks] = await Promise.all([listAll("/datasets", { signal }), listAll("/networks", { signal })]);
  const list = h("div", {});
  const render = (items) =>
    list.replaceChildren(
      table(
        [{ label: "Name" }, { label: "Layers" }, { label: "Loss" }, { label: "Parameters", className: "num" }, { label: "Created" }, { label: "", className: "actions-col" }],
        items.map((net) =>
          h(
            "tr",
            {},
            h("td", {}, link(`#/networks/${net.id}`, net.name), h("div", { class: "id" }, net.id)),
            h("td", {}, architecture(net)),
            h("td", {}, net.loss),
            h("td", { class: "num" }, num(net.parameter_count)),
            h("td", { title: whenTitle(net.created_at) }, when(net.created_at)),
            h("td", { class: "actions-col" }, deleteButton({ what: "network", name: net.name, id: net.id, path: `/networks/${net.id}`, after: async () => render(await listAll("/networks", { signal })) })),
          ),
        ),
        { caption: "Networks", emptyText: "No networks yet: define one above." },
      ),
    );
  render(networks);
  main.append(
    pageHeader("Networks", "Architectures: layers of neurons with their activations."),
    card("Define a network", builder(datasets, query.get("dataset"), navigate)),
    card("Your networks", list),
  );
}

export async function networkPage(main, { params: [id], signal, query, navigate }) {
  const [net, models, datasets] = await Promise.all([
    api(`/networks/${id}`, { signal }),
    listAll(`/models?network_id=${encodeURIComponent(id)}`, { signal }),
    listAll("/datasets", { signal }),
  ]);
  main.append(
    pageHeader(net.name, `Network ${net.id}`),
    h(
      "div",
      { class: "grid-2 grid-wide-right" },
      card(
        "Summary",
        facts([
          ["Layers", architecture(net)],
          ["Loss", net.loss],
          ["Initialisation", `${net.init} (seed ${net.seed})`],
          ["Parameters", num(net.parameter_count)],
          ["Created", new Date(net.created_at).toLocaleString()],
        ]),
      ),
      card("Architecture", drawNetwork({ sizes: [net.input_size, ...net.layers.map((l) => l.units)], activations: net.layers.map((l) => l.activation) })),
    ),
    card(
      "Train this network",
      jobForm({ networks: [net], datasets, networkId: net.id, datasetId: query.get("dataset") ?? matchingDataset(net, datasets), navigate }),
    ),
    card(
      "Models of this network",
      table(
        [{ label: "Model" }, { label: "Task" }, { label: "Metrics" }, { label: "Created" }],
        models.map((m) =>
          h("tr", {}, h("td", {}, link(`#/models/${m.id}`, m.id)), h("td", {}, m.task), h("td", {}, headlineMetric(m.metrics) ?? "–"), h("td", { title: whenTitle(m.created_at) }, when(m.created_at))),
        ),
        { caption: "Models of this network", emptyText: "No trained models yet." },
      ),
    ),
  );
}

/** The newest dataset whose width fits the network's input (a sensible default). */
function matchingDataset(net, datasets) {
  return datasets.find((d) => d.n_features === net.input_size)?.id ?? "";
}
