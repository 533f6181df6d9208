// A model's "Batch predictions" card: run the model over one of your datasets in a worker
// (POST /v1/models/{id}/predictions), follow its runs (GET /v1/predictions?model_id=...)
// with their progress and speed, cancel one, download a finished run's outputs as .npy or
// CSV (fetched with the key, like the exports), and delete an ended one (freeing its
// outputs' bytes in the storage quota).

import { api, listAll } from "../api.js";
import { field, h, sleep } from "../dom.js";
import { num, statusBadge, when, whenTitle } from "../format.js";
import { card, deleteButton, errorBox, notice, onSubmit, table, toast } from "../ui.js";
import { download } from "./modelcard.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);
const FORMATS = [
  { format: "npy", type: "application/x-npy" },
  { format: "csv", type: "text/csv" },
];

function progressCell(run) {
  const total = run.rows_total || 1;
  return h(
    "td",
    {},
    h("progress", { max: String(total), value: String(run.rows_done), "aria-label": `${run.id} progress` }),
    ` ${num(run.rows_done)} / ${num(run.rows_total)}`,
  );
}

function actions(run, refresh) {
  if (ACTIVE.has(run.status)) {
    const cancel = h("button", { type: "button", class: "button button-small" }, "Cancel");
    cancel.addEventListener("click", async () => {
      await api(`/predictions/${run.id}/cancel`, { method: "POST" }).catch((e) => toast(e.message));
      await refresh();
    });
    return cancel;
  }
  // An ended run can be deleted: its outputs stop counting toward the storage quota.
  const remove = deleteButton({ what: "prediction run", name: run.id, id: run.id, path: `/predictions/${run.id}`, after: refresh });
  if (run.status === "succeeded") {
    const downloads = FORMATS.map(({ format, type }) => {
      const button = h("button", { type: "button", class: "button button-small" }, format);
      button.addEventListener("click", () =>
        download(`/predictions/${run.id}/download?format=${format}`, `${run.id}.${format}`, type).catch((e) => toast(e.message)),
      );
      return button;
    });
    return [...downloads, remove];
  }
  return [run.error ? h("span", { class: "muted" }, run.error) : null, remove];
}

function runsTable(runs, refresh) {
  return table(
    [{ label: "Started" }, { label: "Dataset" }, { label: "Status" }, { label: "Rows" }, { label: "Rows/s", className: "num" }, { label: "" }],
    runs.map((run) =>
      h(
        "tr",
        { "data-prediction": run.id },
        h("td", { title: whenTitle(run.created_at) }, when(run.created_at)),
        h("td", {}, run.dataset_id ?? "deleted"),
        h("td", {}, statusBadge(run.status)),
        progressCell(run),
        h("td", { class: "num" }, run.rows_per_second ? num(run.rows_per_second, 3) : "–"),
        h("td", {}, actions(run, refresh)),
      ),
    ),
    { caption: "Prediction runs", emptyText: "None yet." },
  );
}

/** The "Batch predictions" card of a model's page. */
export async function predictionSection(model, { signal }) {
  const width = model.architecture.input_size;
  const datasets = (await listAll("/datasets", { signal })).filter((d) => d.n_features === width);
  const runs = h("div", { "aria-live": "polite" });
  const errors = errorBox();
  let polling = false;
  const refresh = async () => {
    const page = await api(`/predictions?model_id=${model.id}&limit=20`, { signal });
    runs.replaceChildren(runsTable(page.items, refresh));
    return page.items.some((run) => ACTIVE.has(run.status));
  };
  // Redraw every second while a run is queued or running (one loop at a time).
  const follow = async () => {
    if (polling) return;
    polling = true;
    try {
      while (!signal?.aborted && (await refresh())) await sleep(POLL_MS, signal);
    } catch (error) {
      if (!signal?.aborted) toast(error.message);
    } finally {
      polling = false;
    }
  };
  if (!datasets.length) {
    await refresh().catch(() => null);
    return card("Batch predictions", notice(`No dataset with ${width} features: upload one to score it.`), runs);
  }
  const picker = h(
    "select",
    { name: "dataset_id", required: true },
    datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.id}, ${num(d.n_samples)} rows)`)),
  );
  const form = h(
    "form",
    { class: "form", "aria-label": "Batch predictions" },
    field("Dataset", picker, "A worker scores every row; download the outputs as .npy or CSV."),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Run")),
  );
  onSubmit(form, errors, async (data) => {
    await api(`/models/${model.id}/predictions`, { method: "POST", json: { dataset_id: String(data.get("dataset_id")) } });
    follow();
  });
  follow();
  return card("Batch predictions", form, runs);
}
