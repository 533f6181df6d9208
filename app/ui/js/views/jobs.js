// Jobs: the list with live status, the form that starts a job.

import { api, listAll } from "../api.js";
import { field, h, select } from "../dom.js";
import { headlineMetric, num, statusBadge, when, whenTitle } from "../format.js";
import { card, errorBox, link, numberInput, onSubmit, pageHeader, poll, replaceKeepingFocus, table, textInput, toast } from "../ui.js";

export const ACTIVE = new Set(["queued", "running"]);
const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const PAGE_SIZE = 25;

/** Poll delay for a list of jobs: quick while one of them is active, slow otherwise. */
export function listDelay(jobs) {
  return jobs.some((j) => ACTIVE.has(j.status)) ? 2000 : 10000;
}

export function progress(job) {
  return h(
    "div",
    { class: "progress-cell" },
    h("progress", { max: job.epochs, value: job.epoch, "aria-label": `Epoch ${job.epoch} of ${job.epochs}` }),
    h("span", { class: "progress-text" }, `${num(job.epoch)} / ${num(job.epochs)}`),
  );
}

export async function cancelJob(job, keepModel = false) {
  const updated = await api(`/jobs/${job.id}/cancel`, { method: "POST", json: { keep_model: keepModel } });
  toast(updated.status === "cancelled" ? `Job ${job.id} cancelled.` : `Job ${job.id} is stopping…`);
  return updated;
}

/** What a job trains: its network, or, for a sweep's trial (which has none of its own),
 * its sweep and trial index. */
export function trainedWhat(job, names = new Map()) {
  if (job.sweep_id) {
    return h(
      "span",
      {},
      link(`#/sweeps/${job.sweep_id}`, names.get(job.sweep_id) ?? job.sweep_id),
      h("span", { class: "muted" }, `, trial ${job.trial_index}`),
    );
  }
  return job.network_id ? link(`#/networks/${job.network_id}`, names.get(job.network_id) ?? job.network_id) : "deleted network";
}

/** Adds to ``names`` the name of each sweep the jobs are trials of (once per sweep). */
export async function nameSweeps(jobs, names, signal) {
  const unknown = [...new Set(jobs.map((j) => j.sweep_id).filter((id) => id && !names.has(id)))];
  const sweeps = await Promise.all(unknown.map((id) => api(`/sweeps/${id}`, { signal }).catch(() => null)));
  unknown.forEach((id, i) => names.set(id, sweeps[i]?.name ?? id));
}

/** names: Map id -> name of networks, datasets and sweeps (ids are shown for unknown ones). */
export function jobsTable(jobs, { compact = false, onChange = () => {}, names = new Map() } = {}) {
  const columns = [{ label: "Job" }, { label: "Status" }, { label: "Progress" }, { label: "Result" }, { label: "Created" }];
  if (!compact) columns.splice(1, 0, { label: "Network on dataset" });
  if (!compact) columns.push({ label: "", className: "actions-col" });
  const rows = jobs.map((job) => {
    const cells = [
      h("td", {}, link(`#/jobs/${job.id}`, job.id)),
      h("td", {}, statusBadge(job.status, job.cancel_requested)),
      h("td", {}, progress(job)),
      h("td", {}, job.error ? h("span", { class: "error-text", title: job.error }, job.error.slice(0, 60)) : headlineMetric(job.metrics) ?? "–"),
      h("td", { title: whenTitle(job.created_at) }, when(job.created_at)),
    ];
    if (!compact) {
      cells.splice(
        1,
        0,
        h(
          "td",
          {},
          trainedWhat(job, names),
          h("span", { class: "muted" }, " on "),
          job.dataset_id ? link(`#/datasets/${job.dataset_id}`, names.get(job.dataset_id) ?? job.dataset_id) : "deleted dataset",
        ),
      );
      const cancel = ACTIVE.has(job.status) && !job.cancel_requested
        ? h("button", { type: "button", class: "button button-danger button-small", "aria-label": `Cancel job ${job.id}` }, "Cancel")
        : null;
      cancel?.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await cancelJob(job);
        } catch (error) {
          toast(error.message);
        }
        onChange();
      });
      cells.push(h("td", { class: "actions-col" }, cancel));
    }
    return h("tr", { "data-job": job.id }, cells);
  });
  return table(columns, rows, { caption: "Jobs", emptyText: "No jobs yet." });
}

/** The form that starts a training job; goes to the job's page once it is queued. */
export function jobForm({ networks, datasets, networkId = "", datasetId = "", initModelId = "", navigate }) {
  const errors = errorBox();
  const earlyStop = h("input", { type: "checkbox", name: "early_stopping" });
  const patience = numberInput("patience", 20, { min: 1, step: 1 });
  patience.disabled = true;
  earlyStop.addEventListener("change", () => { patience.disabled = !earlyStop.checked; });
  const form = h(
    "form",
    { class: "form", "aria-label": "Start a training job" },
    h(
      "div",
      { class: "form-row" },
      field("Network", select("network_id", [["", "Choose a network"], ...networks.map((n) => [n.id, `${n.name} (${n.input_size} inputs, ${n.id})`])], networkId, { required: true })),
      field("Dataset", select("dataset_id", [["", "Choose a dataset"], ...datasets.map((d) => [d.id, `${d.name} (${d.n_features} features, ${d.id})`])], datasetId, { required: true })),
    ),
    h(
      "div",
      { class: "form-row" },
      field("Epochs", numberInput("epochs", 200, { min: 1, step: 1 })),
      field("Batch size", numberInput("batch_size", 32, { min: 1, step: 1 })),
      field("Optimizer", select("optimizer", [["adam", "Adam"], ["momentum", "Momentum"], ["sgd", "SGD"]], "adam")),
      field("Learning rate", numberInput("learning_rate", 0.01, { min: 0, step: "any" })),
    ),
    h(
      "div",
      { class: "form-row" },
      field("Validation split", numberInput("validation_split", 0.2, { min: 0, max: 0.9, step: 0.05 }), "Share held out to measure generalisation"),
      field("L2 penalty", numberInput("l2", 0, { min: 0, step: "any" })),
      field("Seed", numberInput("seed", 0, { min: 0, step: 1 })),
    ),
    h(
      "div",
      { class: "form-row form-row-checks" },
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "standardize", checked: true }), "Standardise features"),
      h("label", { class: "check" }, earlyStop, "Stop early when validation loss stalls"),
      field("Patience (epochs)", patience),
    ),
    field("Start from model (optional)", textInput("init_model_id", initModelId, { placeholder: "mdl_…" }), "Continue training from a model's weights"),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Start training")),
  );
  onSubmit(form, errors, async (data) => {
    const body = {
      network_id: data.get("network_id"),
      dataset_id: data.get("dataset_id"),
      epochs: Number(data.get("epochs")),
      batch_size: Number(data.get("batch_size")),
      optimizer: { name: data.get("optimizer"), learning_rate: Number(data.get("learning_rate")) },
      validation_split: Number(data.get("validation_split")),
      l2: Number(data.get("l2")),
      seed: Number(data.get("seed")),
      standardize: data.get("standardize") === "on",
    };
    if (data.get("early_stopping") === "on") body.early_stopping = { patience: Number(data.get("patience")) };
    const init = String(data.get("init_model_id") ?? "").trim();
    if (init) body.init_model_id = init;
    const job = await api("/jobs", { method: "POST", json: body });
    toast(`Job ${job.id} queued.`);
    navigate(`#/jobs/${job.id}`);
  });
  return form;
}

export async function jobsPage(main, { signal, query, navigate }) {
  const [networks, datasets] = await Promise.all([listAll("/networks", { signal }), listAll("/datasets", { signal })]);
  const names = new Map([...networks, ...datasets].map((o) => [o.id, o.name]));
  const filter = select("status", STATUSES.map((st) => [st, st || "All"]), "");
  const list = h("div", {});
  const listErrors = errorBox();
  let offset = 0;
  const pager = h("div", { class: "pager" });
  const load = async () => {
    const status = filter.value ? `status=${filter.value}&` : "";
    const page = await api(`/jobs?${status}limit=${PAGE_SIZE}&offset=${offset}`, { signal });
    await nameSweeps(page.items, names, signal);
    replaceKeepingFocus(list, jobsTable(page.items, { onChange: load, names }));
    const go = (to) => () => { offset = Math.max(0, to); load(); };
    const last = Math.min(page.total, offset + page.items.length);
    replaceKeepingFocus(
      pager,
      page.total > PAGE_SIZE ? h("span", { class: "muted" }, `${offset + 1}–${last} of ${page.total}`) : "",
      offset > 0 ? h("button", { type: "button", class: "button button-small", "aria-label": "Newer jobs", onclick: go(offset - PAGE_SIZE) }, "Newer") : "",
      last < page.total ? h("button", { type: "button", class: "button button-small", "aria-label": "Older jobs", onclick: go(offset + PAGE_SIZE) }, "Older") : "",
    );
    listErrors.hide();
    return listDelay(page.items);
  };
  filter.addEventListener("change", () => { offset = 0; load(); });
  const wantForm = query.has("network") || query.has("dataset") || query.has("init_model");
  const formBox = h(
    "details",
    { class: "card details-card", open: wantForm || networks.length === 0 ? true : null },
    h("summary", {}, h("h2", {}, "Start a training job")),
    networks.length === 0
      ? h("p", {}, "First ", link("#/networks", "define a network"), ".")
      : jobForm({
          networks,
          datasets,
          networkId: query.get("network") ?? "",
          datasetId: query.get("dataset") ?? "",
          initModelId: query.get("init_model") ?? "",
          navigate,
        }),
  );
  main.append(
    pageHeader("Jobs", "Training runs, queued and run by the workers."),
    formBox,
    card("Your jobs", h("div", { class: "toolbar" }, field("Show", filter)), listErrors, list, pager),
  );
  poll(load, await load(), signal, (error) => listErrors.show(error));
}
