// A job's page: live curves over the SSE stream, epoch and speed, cancel; the findings
// and the layer statistics (xray.js); once the job has a model, its decision surface and
// its weights.

import { api } from "../api.js";
import { LineChart, secondMetric } from "../charts.js";
import { h, sleep } from "../dom.js";
import { architecture, duration, num, percent, statusBadge } from "../format.js";
import { readEvents } from "../sse.js";
import { card, errorBox, facts, link, notice, pageHeader, poll } from "../ui.js";
import { XRay } from "../xray.js";
import { ACTIVE, cancelJob } from "./jobs.js";
import { modelVisuals } from "./models.js";

/**
 * Follow /v1/jobs/{id}/events until its "end" event, reconnecting (with back-off) when
 * the stream drops early; a reconnection sends Last-Event-ID so that the server
 * resumes after the last epoch received.
 */
async function follow(jobId, { onEpoch, onFindings, onEnd, onError, signal }) {
  let lastEventId = "";
  for (let attempt = 0; !signal.aborted; attempt++) {
    let ended = false;
    try {
      await readEvents(`/jobs/${jobId}/events`, {
        signal,
        lastEventId,
        onEvent(event) {
          if (event.id) lastEventId = event.id;
          if (event.type === "epoch") onEpoch(JSON.parse(event.data));
          else if (event.type === "findings") onFindings(JSON.parse(event.data).findings);
          else if (event.type === "end") {
            ended = true;
            onEnd(JSON.parse(event.data));
          }
        },
      });
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (error.status && error.status < 500 && error.status !== 429) {
        onError(error);
        return;
      }
    }
    if (ended) return;
    await sleep(Math.min(10000, 500 * 2 ** attempt), signal);
  }
}

function optionFacts(options) {
  const opt = options.optimizer ?? {};
  return facts([
    ["Epochs", num(options.epochs)],
    ["Batch size", num(options.batch_size)],
    ["Optimizer", `${opt.name ?? "–"}, learning rate ${num(opt.learning_rate)}`],
    ["Validation split", percent(options.validation_split)],
    ["L2 penalty", num(options.l2)],
    ["Early stopping", options.early_stopping ? `patience ${options.early_stopping.patience}` : "off"],
    ["Standardise", options.standardize ? "yes" : "no"],
    ["Seed", num(options.seed)],
  ]);
}

export async function jobPage(main, { params: [id], signal }) {
  let job = await api(`/jobs/${id}`, { signal });
  const [network, dataset] = await Promise.all([
    job.network_id ? api(`/networks/${job.network_id}`, { signal }) : null,
    job.dataset_id ? api(`/datasets/${job.dataset_id}`, { signal }) : null,
  ]);
  const epochs = new Map(job.history.map((e) => [e.epoch, e]));
  const history = () => [...epochs.values()].sort((a, b) => a.epoch - b.epoch);

  const badgeSlot = h("span", { class: "status-slot", "aria-live": "polite" });
  const keepModel = h("input", { type: "checkbox", name: "keep_model" });
  const cancelButton = h("button", { type: "button", class: "button button-danger" }, "Cancel job");
  const cancelBox = h("div", { class: "cancel-box" }, h("label", { class: "check" }, keepModel, "keep the model so far"), cancelButton);
  const errors = errorBox();
  const epochText = h("span", { class: "stat-value" });
  const epochBar = h("progress", { max: 1, value: 0, "aria-label": "Training progress" });
  const speedText = h("span", { class: "stat-value" });
  const timeText = h("span", { class: "stat-value" });
  const metricText = h("span", { class: "stat-value" });
  const metricLabel = h("span", { class: "stat-label" }, "latest");
  const messageSlot = h("div", {});
  const modelSlot = h("span", {});
  const attemptsSlot = h("span", {});

  const lossChart = new LineChart({
    title: "Loss",
    series: [
      { key: "loss", label: "training", className: "s-train" },
      { key: "val_loss", label: "validation", className: "s-val" },
    ],
  });
  const logToggle = h("input", { type: "checkbox", name: "log_scale" });
  logToggle.addEventListener("change", () => lossChart.setLog(logToggle.checked));
  const metric = secondMetric(job.history) ?? (network?.loss?.includes("crossentropy") ? { key: "accuracy", title: "Accuracy", percent: true } : { key: "r2", title: "R²", percent: false });
  const metricChart = new LineChart({
    title: metric.title,
    percent: metric.percent,
    series: [
      { key: metric.key, label: "training", className: "s-train" },
      { key: `val_${metric.key}`, label: "validation", className: "s-val" },
    ],
  });
  const visuals = h("div", { class: "visuals" });
  const xray = new XRay(network);

  const stat = (label, value, extra) => h("div", { class: "stat" }, value, h("span", { class: "stat-label" }, label), extra);
  main.append(
    pageHeader(`Job ${job.id}`, network ? `${network.name}: ${architecture(network)}` : "", badgeSlot, cancelBox),
    errors,
    messageSlot,
    xray.banner,
    h(
      "div",
      { class: "stats" },
      stat("epoch", epochText, epochBar),
      stat("samples / second", speedText),
      stat("training time", timeText),
      h("div", { class: "stat" }, metricText, metricLabel),
    ),
    h(
      "div",
      { class: "grid-2" },
      card(null, lossChart.element, h("label", { class: "check check-small" }, logToggle, "logarithmic scale")),
      card(null, metricChart.element),
    ),
    xray.element,
    visuals,
    h(
      "div",
      { class: "grid-2" },
      card(
        "Links",
        facts([
          job.sweep_id
            ? ["Sweep", h("span", {}, link(`#/sweeps/${job.sweep_id}`, job.sweep_id), `, trial ${job.trial_index}`)]
            : ["Network", job.network_id ? link(`#/networks/${job.network_id}`, network?.name ?? job.network_id) : "deleted"],
          ["Dataset", dataset ? link(`#/datasets/${dataset.id}`, dataset.name) : "deleted"],
          ["Model", modelSlot],
          ["Started from", job.init_model_id ? link(`#/models/${job.init_model_id}`, job.init_model_id) : "fresh weights"],
          ["Attempts", attemptsSlot],
        ]),
      ),
      card("Hyperparameters", optionFacts(job.options)),
    ),
  );

  let drawn = null; // the id of the model drawn below
  let frame = 0;
  const redrawCharts = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const all = history();
      lossChart.update(all);
      metricChart.update(all);
      xray.update(all, job.findings);
    });
  };
  const renderStats = () => {
    const all = history();
    const last = all[all.length - 1];
    const done = Math.max(job.epoch, last?.epoch ?? 0);
    epochText.textContent = `${num(done)} / ${num(job.epochs)}`;
    epochBar.max = job.epochs;
    epochBar.value = done;
    const speed = last?.samples_per_second ?? job.samples_per_second;
    speedText.textContent = speed ? num(Math.round(speed)) : "–";
    const seconds = all.reduce((t, e) => t + (e.seconds ?? 0), 0);
    timeText.textContent = all.length ? duration(seconds) : "–";
    const m = last?.[`val_${metric.key}`] ?? last?.[metric.key];
    const split = last?.[`val_${metric.key}`] !== undefined ? "validation" : "training";
    metricText.textContent = m === undefined ? "–" : metric.percent ? percent(m) : num(m);
    metricLabel.textContent = `${split} ${metric.key === "r2" ? "R²" : metric.title.toLowerCase()}`;
  };
  const renderStatus = () => {
    badgeSlot.replaceChildren(statusBadge(job.status, job.cancel_requested));
    const active = ACTIVE.has(job.status);
    cancelBox.hidden = !active;
    cancelButton.disabled = job.cancel_requested;
    cancelButton.textContent = job.cancel_requested ? "Stopping…" : "Cancel job";
    messageSlot.replaceChildren(
      job.status === "failed" ? notice(`Training failed: ${job.error ?? "unknown error"}`, "error") : "",
      job.status === "queued" ? notice("Waiting for a free worker…") : "",
      job.status === "cancelled" ? notice(job.model_id ? "Cancelled; its model is kept (below)." : "Cancelled.") : "",
    );
    // Attempts cut short by a dead worker after a checkpoint are preemption, not failure.
    const stalled = job.attempts_without_progress;
    attemptsSlot.textContent = stalled ? `${job.attempts} (${stalled} without progress)` : String(job.attempts);
    modelSlot.replaceChildren(job.model_id ? link(`#/models/${job.model_id}`, job.model_id) : ACTIVE.has(job.status) ? "when training ends" : "none");
    renderStats();
  };
  const showModel = async () => {
    // A halving trial's model changes from rung to rung: the new one is drawn.
    if (drawn === job.model_id || !job.model_id) {
      if (!job.model_id && !ACTIVE.has(job.status)) visuals.replaceChildren();
      return;
    }
    drawn = job.model_id;
    visuals.replaceChildren(card("Decision surface and weights", h("p", { class: "muted" }, `Loading model ${job.model_id}…`)));
    await modelVisuals(visuals, { modelId: job.model_id, datasetId: job.dataset_id, signal });
  };

  cancelButton.addEventListener("click", async () => {
    cancelButton.disabled = true;
    errors.hide();
    try {
      job = await cancelJob(job, keepModel.checked);
      renderStatus();
      if (!ACTIVE.has(job.status)) await showModel();
    } catch (error) {
      errors.show(error);
      cancelButton.disabled = false;
    }
  });

  renderStatus();
  redrawCharts();
  if (ACTIVE.has(job.status)) {
    visuals.replaceChildren(
      card("Decision surface and weights", notice("They appear when the job has produced its model: the API serves a model's weights once training ends (or is cancelled with “keep the model so far”).")),
    );
    const refresh = async () => {
      const fresh = await api(`/jobs/${id}`, { signal });
      const wasActive = ACTIVE.has(job.status);
      job = fresh;
      for (const e of fresh.history) if (!epochs.has(e.epoch)) epochs.set(e.epoch, e);
      renderStatus();
      redrawCharts();
      if (wasActive && !ACTIVE.has(job.status)) await showModel();
      return ACTIVE.has(job.status);
    };
    follow(id, {
      signal,
      onEpoch(entry) {
        epochs.set(entry.epoch, entry);
        if (job.status === "queued") job = { ...job, status: "running" };
        renderStatus();
        redrawCharts();
      },
      onFindings(findings) {
        job = { ...job, findings };
        redrawCharts();
      },
      onEnd() {
        refresh().catch((error) => errors.show(error));
      },
      onError: (error) => errors.show(error),
    });
    // The stream carries the epochs and the end; a slow poll of the job catches the rest
    // (queued → running before the first epoch, a cancel made elsewhere).
    poll(refresh, 4000, signal, (error) => errors.show(error));
  } else {
    await showModel();
  }
}
