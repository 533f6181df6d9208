// Datasets: list, generate a toy set, upload a CSV; a dataset's page with its points.

import { api, listAll } from "../api.js";
import { field, h, select } from "../dom.js";
import { num, when, whenTitle } from "../format.js";
import { SurfacePlot } from "../surface.js";
import { card, deleteButton, errorBox, facts, link, notice, numberInput, onSubmit, pageHeader, table, textInput, toast } from "../ui.js";

const KINDS = [
  ["moons", "Two moons"],
  ["circles", "Circles"],
  ["xor", "XOR"],
  ["spirals", "Spirals"],
  ["blobs", "Blobs"],
];
const SCATTER_ROWS = 2000;

export function labelSummary(ds) {
  if (ds.label_kind === "categorical") {
    const classes = ds.classes ?? [];
    const shown = classes.slice(0, 6).map(String).join(", ");
    return `${classes.length} classes (${shown}${classes.length > 6 ? ", …" : ""})`;
  }
  if (ds.label_kind === "multi_output") return `${ds.n_targets} continuous targets`;
  return "continuous";
}

function generateForm(navigate) {
  const errors = errorBox();
  const form = h(
    "form",
    { class: "form", "aria-label": "Generate a toy dataset" },
    h(
      "div",
      { class: "form-row" },
      field("Kind", select("kind", KINDS, "moons")),
      field("Samples", numberInput("n_samples", 200, { min: 4, step: 1 })),
    ),
    h(
      "div",
      { class: "form-row" },
      field("Noise", numberInput("noise", 0.1, { min: 0, max: 10, step: 0.01 })),
      field("Classes", numberInput("classes", 2, { min: 2, max: 50, step: 1 }), "Arms of spirals, centres of blobs"),
      field("Seed", numberInput("seed", 0, { min: 0, step: 1 })),
    ),
    field("Name (optional)", textInput("name", "", { placeholder: "defaults to the kind" })),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Generate dataset")),
  );
  onSubmit(form, errors, async (data) => {
    const body = {
      kind: data.get("kind"),
      n_samples: Number(data.get("n_samples")),
      noise: Number(data.get("noise")),
      classes: Number(data.get("classes")),
      seed: Number(data.get("seed")),
    };
    const name = String(data.get("name")).trim();
    if (name) body.name = name;
    const ds = await api("/datasets/generate", { method: "POST", json: body });
    toast(`Dataset ${ds.name} created.`);
    navigate(`#/datasets/${ds.id}`);
  });
  return form;
}

function uploadForm(navigate) {
  const errors = errorBox();
  const file = h("input", { type: "file", name: "file", accept: ".csv,.npz,text/csv", required: true });
  const name = textInput("name", "", { required: true, maxlength: 200 });
  file.addEventListener("change", () => {
    if (!name.value && file.files[0]) name.value = file.files[0].name.replace(/\.(csv|npz)$/i, "");
  });
  const form = h(
    "form",
    { class: "form", "aria-label": "Upload a CSV" },
    field("CSV file", file, "A header row, then one sample per row: numeric features and one label column (an .npz with arrays x and y works too)."),
    h(
      "div",
      { class: "form-row" },
      field("Name", name),
      field("Label column", textInput("target", "", { placeholder: "last column" }), "Its header name; empty = the last column"),
    ),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Upload")),
  );
  onSubmit(form, errors, async (data) => {
    if (!String(data.get("target")).trim()) data.delete("target");
    const ds = await api("/datasets/upload", { method: "POST", form: data });
    toast(`Dataset ${ds.name} uploaded.`);
    navigate(`#/datasets/${ds.id}`);
  });
  return form;
}

export async function datasetsPage(main, { signal, navigate }) {
  const list = h("div", {});
  const load = async () => {
    const items = await listAll("/datasets", { signal });
    list.replaceChildren(
      table(
        [{ label: "Name" }, { label: "Samples", className: "num" }, { label: "Features", className: "num" }, { label: "Labels" }, { label: "Created" }, { label: "", className: "actions-col" }],
        items.map((ds) =>
          h(
            "tr",
            {},
            h("td", {}, link(`#/datasets/${ds.id}`, ds.name), h("div", { class: "id" }, ds.id)),
            h("td", { class: "num" }, num(ds.n_samples)),
            h("td", { class: "num" }, num(ds.n_features)),
            h("td", {}, labelSummary(ds)),
            h("td", { title: whenTitle(ds.created_at) }, when(ds.created_at)),
            h("td", { class: "actions-col" }, deleteButton({ what: "dataset", name: ds.name, id: ds.id, path: `/datasets/${ds.id}`, after: load })),
          ),
        ),
        { caption: "Datasets", emptyText: "No datasets yet: generate one or upload a CSV." },
      ),
    );
  };
  main.append(
    pageHeader("Datasets", "Training data: features x and labels y."),
    h("div", { class: "grid-2" }, card("Generate a toy dataset", generateForm(navigate)), card("Upload a CSV", uploadForm(navigate))),
    card("Your datasets", list),
  );
  await load();
}

/** Models trained on a dataset (by a job), newest first. */
export function modelsOfDataset(datasetId, signal) {
  return listAll(`/models?dataset_id=${encodeURIComponent(datasetId)}`, { signal });
}

export async function datasetPage(main, { params: [id], signal }) {
  const ds = await api(`/datasets/${id}`, { signal });
  const featureNames = ds.feature_names ?? Array.from({ length: ds.n_features }, (_, i) => `x${i + 1}`);
  const statsRows = featureNames.map((name, i) =>
    h("tr", {}, h("th", { scope: "row" }, name), ...["mean", "std", "min", "max"].map((k) => h("td", { class: "num" }, num(ds.stats[k][i]))))
  );
  main.append(
    pageHeader(
      ds.name,
      `Dataset ${ds.id}`,
      h("a", { class: "button", href: `#/networks?dataset=${ds.id}` }, "Define a network for it"),
      h("a", { class: "button button-primary", href: `#/jobs?dataset=${ds.id}` }, "Train on it"),
    ),
  );
  const info = card(
    "Summary",
    facts([
      ["Samples", num(ds.n_samples)],
      ["Features", num(ds.n_features)],
      ["Labels", labelSummary(ds)],
      ["Created", new Date(ds.created_at).toLocaleString()],
      ["SHA-256", h("code", { class: "hash" }, ds.sha256.slice(0, 16) + "…")],
    ]),
    h("h3", {}, "Features"),
    table([{ label: "Feature" }, ...["mean", "std", "min", "max"].map((l) => ({ label: l, className: "num" }))], statsRows, { caption: "Feature statistics" }),
  );
  if (ds.n_features !== 2) {
    const data = await api(`/datasets/${id}/data?limit=20`, { signal });
    main.append(
      h("div", { class: "grid-2 grid-wide-right" }, info,
        card(
          "First rows",
          table(
            [...featureNames.map((n) => ({ label: n, className: "num" })), { label: "label" }],
            data.x.map((row, i) => h("tr", {}, row.map((v) => h("td", { class: "num" }, num(v))), h("td", {}, JSON.stringify(data.y[i])))),
            { caption: "First rows of the dataset" },
          ),
          notice("Decision surfaces are drawn for datasets with two features."),
        ),
      ),
    );
    return;
  }
  const plot = new SurfacePlot({ featureNames });
  const chooser = h("select", { name: "surface-model" }, h("option", { value: "" }, "Only the data points"));
  const plotErrors = errorBox();
  main.append(h("div", { class: "grid-2 grid-wide-right" }, info, card("Data", field("Decision surface of", chooser), plotErrors, plot.element)));
  const data = await api(`/datasets/${id}/data?limit=${SCATTER_ROWS}`, { signal });
  const render = async (modelId) => {
    plotErrors.hide();
    try {
      const model = modelId ? await api(`/models/${modelId}`, { signal }) : null;
      await plot.render({ data, classes: ds.classes, stats: ds.stats, model, signal });
    } catch (error) {
      if (error.name !== "AbortError") plotErrors.show(error);
    }
  };
  await render(null);
  const trained = await modelsOfDataset(id, signal);
  for (const model of trained) chooser.append(h("option", { value: model.id }, `${model.id} (job ${model.job_id})`));
  if (trained.length) {
    chooser.value = trained[0].id;
    await render(trained[0].id);
  }
  chooser.addEventListener("change", () => render(chooser.value));
}
