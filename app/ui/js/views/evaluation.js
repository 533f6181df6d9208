// A model's "Evaluate" card: pick one of your datasets, score the model on it (POST
// /v1/models/{id}/evaluate) and see the result: the confusion-matrix heat map, the ROC
// curve of a binary model and the per-class table, or predicted against actual for
// regression. Earlier evaluations (GET /v1/models/{id}/evaluations) can be shown again.
// A large dataset is scored by a worker (202): the card shows its rows until it is done
// (GET /v1/evaluations/{id}), then its scores; it can be cancelled meanwhile, and an
// ended evaluation deleted from the list (DELETE /v1/evaluations/{id}).

import { api, listAll } from "../api.js";
import { field, h, sleep } from "../dom.js";
import { confusionHeatmap, rocPlot, scatterPlot } from "../evalplots.js";
import { num, when, whenTitle } from "../format.js";
import { card, deleteButton, errorBox, facts, link, notice, onSubmit, table, toast } from "../ui.js";

function scoreFacts(e) {
  if (e.task === "regression") {
    return facts([["Rows", num(e.n_samples)], ["MSE", num(e.mse)], ["RMSE", num(e.rmse)], ["MAE", num(e.mae)], ["R²", num(e.r2)]]);
  }
  return facts([
    ["Rows", num(e.n_samples)],
    ["Accuracy", num(e.accuracy)],
    ["Log loss", num(e.log_loss)],
    ["ROC AUC", e.roc_auc === null ? "undefined (a class has no rows)" : num(e.roc_auc)],
    ["Macro F1", num(e.macro.f1)],
    ["Weighted F1", num(e.weighted.f1)],
  ]);
}

function perClassTable(e) {
  const row = (label, scores, support, head = false) =>
    h(
      "tr",
      {},
      head ? h("th", { scope: "row" }, label) : h("td", {}, label),
      ["precision", "recall", "f1"].map((k) => h("td", { class: "num" }, num(scores[k]))),
      h("td", { class: "num" }, support === null ? "" : num(support)),
    );
  return table(
    [{ label: "Class" }, { label: "Precision", className: "num" }, { label: "Recall", className: "num" }, { label: "F1", className: "num" }, { label: "Support", className: "num" }],
    [
      ...e.per_class.map((c) => row(String(c.label), c, c.support)),
      row("macro average", e.macro, null, true),
      row("weighted average", e.weighted, e.n_samples, true),
    ],
    { caption: "Per-class scores" },
  );
}

function perTargetTable(e) {
  return table(
    [{ label: "Target" }, ...["MSE", "RMSE", "MAE", "R²"].map((label) => ({ label, className: "num" }))],
    e.per_target.map((t) => h("tr", {}, h("td", {}, `output ${t.target}`), ["mse", "rmse", "mae", "r2"].map((k) => h("td", { class: "num" }, num(t[k]))))),
    { caption: "Per-target scores" },
  );
}

const POLL_MS = 1000;

const ACTIVE = new Set(["queued", "running"]);

/** Evaluations whose cancel was sent: their Cancel button stays disabled while the view is
 * redrawn by the polling. */
const cancelling = new Set();

/** An evaluation a worker has not finished: its status and rows, and while it may still
 * run a Cancel button (POST /v1/evaluations/{id}/cancel), whose answer goes to onCancel. */
function pendingView(e, onCancel) {
  const cancel = ACTIVE.has(e.status)
    ? h(
        "button",
        {
          type: "button",
          class: "button button-small",
          disabled: cancelling.has(e.id),
          onclick: async (event) => {
            event.currentTarget.disabled = true;
            cancelling.add(e.id);
            const answer = await api(`/evaluations/${e.id}/cancel`, { method: "POST" }).catch((error) => {
              toast(error.message);
              return null;
            });
            if (answer) onCancel(answer);
          },
        },
        "Cancel",
      )
    : null;
  return h(
    "div",
    { class: "evaluation", "data-evaluation": e.id, "data-status": e.status },
    notice(`Scored by a worker: ${e.status}, ${num(e.rows_done ?? 0)} of ${num(e.rows_total)} rows${e.error ? ` (${e.error})` : ""}.`),
    cancel,
  );
}

/** One evaluation's scores and plots (or, before a worker finished it, its progress). */
export function evaluationView(e, { onCancel = () => {} } = {}) {
  if (e.status !== "succeeded") return pendingView(e, onCancel);
  const source = e.dataset_id ? link(`#/datasets/${e.dataset_id}`, e.dataset_id) : "a deleted dataset";
  const plots =
    e.task === "regression"
      ? [scatterPlot(e.points)]
      : [confusionHeatmap(e.confusion_matrix, e.classes), e.roc_curve ? rocPlot(e.roc_curve, e.roc_auc, e.classes[1]) : null];
  return h(
    "div",
    { class: "evaluation", "data-evaluation": e.id },
    h("p", { class: "muted" }, "On ", source, ` · ${when(e.created_at)}`),
    scoreFacts(e),
    h("div", { class: "grid-2 eval-plots" }, plots),
    e.task === "regression" ? perTargetTable(e) : perClassTable(e),
  );
}

function historyTable(items, show, refresh) {
  return table(
    [{ label: "Evaluated" }, { label: "Dataset" }, { label: "Rows", className: "num" }, { label: "Score", className: "num" }, { label: "" }],
    items.map((e) =>
      h(
        "tr",
        {},
        h("td", { title: whenTitle(e.created_at) }, when(e.created_at)),
        h("td", {}, e.dataset_id ?? "deleted"),
        h("td", { class: "num" }, num(e.n_samples ?? e.rows_total)),
        h("td", { class: "num" }, e.status !== "succeeded" ? e.status : e.task === "regression" ? `R² ${num(e.r2)}` : `accuracy ${num(e.accuracy)}`),
        h(
          "td",
          {},
          h("button", { type: "button", class: "button button-small", onclick: () => show(e) }, "Show"),
          ACTIVE.has(e.status) ? null : deleteButton({ what: "evaluation", name: e.id, id: e.id, path: `/evaluations/${e.id}`, after: refresh }),
        ),
      ),
    ),
    { caption: "Evaluations", emptyText: "None yet." },
  );
}

/** The "Evaluate" card of a model's page; onEvaluated() runs after each new evaluation. */
export async function evaluationSection(model, { signal, onEvaluated = async () => {} }) {
  const width = model.architecture.input_size;
  const datasets = (await listAll("/datasets", { signal })).filter((d) => d.n_features === width);
  const result = h("div", { "aria-live": "polite" });
  const history = h("div", {});
  const errors = errorBox();
  let following = null; // the id of the evaluation being polled, if any
  const show = (e) => result.replaceChildren(evaluationView(e, { onCancel: show }));
  // Show an evaluation; one a worker has not finished is polled until it ends (only the
  // one shown: showing another stops the polling of the last).
  const follow = async (e) => {
    following = ACTIVE.has(e.status) ? e.id : null;
    show(e);
    if (following === null) return;
    while (ACTIVE.has(e.status) && following === e.id && !signal?.aborted) {
      await sleep(POLL_MS, signal);
      const latest = await api(`/evaluations/${e.id}`, { signal });
      if (following !== e.id) return;
      e = latest;
      show(e);
    }
    following = null;
    await Promise.all([loadHistory(), onEvaluated()]);
  };
  const loadHistory = async () => {
    const page = await api(`/models/${model.id}/evaluations?limit=20`, { signal });
    history.replaceChildren(h("h3", {}, "Earlier evaluations"), historyTable(page.items, (e) => follow(e), () => loadHistory().catch(() => [])));
    return page.items;
  };
  if (!datasets.length) {
    return card("Evaluate", notice(`No dataset with ${width} features: upload one to evaluate this model.`));
  }
  const picker = h(
    "select",
    { name: "dataset_id", required: true },
    datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.id}, ${num(d.n_samples)} rows)`)),
  );
  const form = h(
    "form",
    { class: "form", "aria-label": "Evaluate" },
    field("Dataset", picker, `Held-out data with the model's ${width} features and labels it knows.`),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Evaluate")),
  );
  onSubmit(form, errors, async (data) => {
    const evaluation = await api(`/models/${model.id}/evaluate`, { method: "POST", json: { dataset_id: String(data.get("dataset_id")) } });
    if (ACTIVE.has(evaluation.status)) {
      await follow(evaluation);
    } else {
      show(evaluation);
      await Promise.all([loadHistory(), onEvaluated()]);
    }
  });
  const section = card("Evaluate", form, result, history);
  const items = await loadHistory().catch(() => []);
  if (items.length) follow(items[0]).catch(() => {});
  return section;
}
