// Sweeps: the list, and one sweep's page: its sortable leaderboard, the score against
// each parameter, and the curves of its best trials overlaid.

import { api, listAll } from "../api.js";
import { h } from "../dom.js";
import { num, statusBadge, when, whenTitle } from "../format.js";
import { bestCurves, scoreByParam } from "../sweepplots.js";
import { card, facts, link, pageHeader, poll, replaceKeepingFocus, table, toast } from "../ui.js";

const ACTIVE = new Set(["queued", "running"]);
const BEST_CURVES = 3;

function ended(sweep) {
  return sweep.trials.filter((t) => !ACTIVE.has(t.status)).length;
}

function value(v) {
  return typeof v === "number" ? num(v, 4) : JSON.stringify(v);
}

export async function sweepsPage(main, { signal }) {
  const list = h("div", {});
  main.append(pageHeader("Sweeps", "Hyperparameter searches: each trial is a job. Start one with POST /v1/sweeps or `backprop sweep create`."), card(null, list));
  const render = async () => {
    const sweeps = await listAll("/sweeps", { signal });
    const rows = sweeps.map((sw) => h("tr", { "data-sweep": sw.id },
      h("td", {}, link(`#/sweeps/${sw.id}`, sw.name)),
      h("td", {}, statusBadge(sw.status)),
      h("td", {}, `${ended(sw)} / ${sw.trials.length}`),
      h("td", {}, `${sw.strategy.name}`),
      h("td", {}, sw.best ? `${sw.metric} ${num(sw.best.score)}` : "–"),
      h("td", { title: whenTitle(sw.created_at) }, when(sw.created_at)),
    ));
    const columns = ["Sweep", "Status", "Trials ended", "Strategy", "Best", "Created"].map((label) => ({ label }));
    replaceKeepingFocus(list, table(columns, rows, { caption: "Sweeps", emptyText: "No sweeps yet." }));
    return sweeps.some((sw) => ACTIVE.has(sw.status)) ? 2000 : 10000;
  };
  await render();
  poll(render, 2000, signal);
}

/** The leaderboard: one row per trial, sorted by the column whose header was clicked. */
function leaderboard(sweep, state, onSort) {
  const paths = Object.keys(sweep.grid);
  const sign = sweep.maximise ? -1 : 1;
  const keys = {
    score: (t) => (t.score === null ? Infinity : sign * t.score),
    index: (t) => t.index,
    epochs: (t) => t.epochs_run,
    ...Object.fromEntries(paths.map((p) => [p, (t) => t.params[p]])),
  };
  const key = keys[state.by] ?? keys.score;
  const trials = [...sweep.trials].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = typeof x === "number" && typeof y === "number" ? x - y : JSON.stringify(x).localeCompare(JSON.stringify(y));
    return state.descending ? -order : order;
  });
  const header = (label, by) => {
    const sorted = state.by === by;
    const button = h("button", { type: "button", class: "sort-button", "data-sort": by }, label, sorted ? (state.descending ? " ▼" : " ▲") : "");
    button.addEventListener("click", () => onSort(by));
    return { label: button, ariaSort: sorted ? (state.descending ? "descending" : "ascending") : "none" };
  };
  const columns = [header("#", "index"), header(`${sweep.metric} (${sweep.maximise ? "higher" : "lower"} is better)`, "score"), header("Epochs", "epochs"), ...paths.map((p) => header(p, p)), { label: "Status" }, { label: "Model" }];
  const rows = trials.map((t) => h("tr", { "data-trial": t.index, class: sweep.best?.index === t.index ? "best-row" : null },
    h("td", {}, link(`#/jobs/${t.job_id}`, String(t.index))),
    h("td", { class: "num", "data-score": t.score ?? "" }, t.score === null ? "–" : num(t.score)),
    h("td", {}, `${t.epochs_run} / ${t.epochs}`),
    ...paths.map((p) => h("td", {}, value(t.params[p]))),
    h("td", {}, statusBadge(t.status)),
    h("td", {}, t.model_id ? link(`#/models/${t.model_id}`, t.model_id) : "–"),
  ));
  const wrap = table(columns.map((c) => ({ label: c.label })), rows, { caption: "Leaderboard", emptyText: "No trials." });
  wrap.querySelectorAll("th").forEach((th, i) => columns[i].ariaSort && th.setAttribute("aria-sort", columns[i].ariaSort));
  return wrap;
}

async function curves(sweep, signal) {
  const sign = sweep.maximise ? -1 : 1;
  const best = sweep.trials.filter((t) => t.score !== null).sort((a, b) => sign * (a.score - b.score)).slice(0, BEST_CURVES);
  const runs = await Promise.all(best.map(async (trial) => ({ trial, history: (await api(`/jobs/${trial.job_id}`, { signal })).history })));
  return bestCurves(runs, sweep.metric);
}

export async function sweepPage(main, { params: [id], signal }) {
  const head = h("div", {});
  const board = h("div", {});
  const plots = h("div", { class: "chart-grid" });
  const curveBox = h("div", {});
  const state = { by: "score", descending: false };
  let sweep = await api(`/sweeps/${id}`, { signal });
  const cancel = h("button", { type: "button", class: "button button-danger" }, "Cancel sweep");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      sweep = await api(`/sweeps/${id}/cancel`, { method: "POST" });
      toast(`Sweep ${id} cancelled; finished models are kept.`);
      draw();
    } catch (error) {
      toast(error.message);
    }
  });
  main.append(pageHeader(sweep.name, `Sweep ${sweep.id}: ${sweep.strategy.name} over ${Object.keys(sweep.grid).join(", ")}`, cancel), head, card("Leaderboard", board), card("Score by parameter", plots), card("Best trials", curveBox));
  let drawnEnded = -1;
  const draw = async () => {
    cancel.hidden = !ACTIVE.has(sweep.status);
    replaceKeepingFocus(head, card(null, facts([
      ["Status", statusBadge(sweep.status)],
      ["Trials ended", `${ended(sweep)} / ${sweep.trials.length}`],
      ["Best", sweep.best ? h("span", {}, `${sweep.metric} ${num(sweep.best.score)} · trial ${sweep.best.index} · `, sweep.best.model_id ? link(`#/models/${sweep.best.model_id}`, sweep.best.model_id) : "no model") : "–"],
      ["Created", when(sweep.created_at)],
      ["Finished", sweep.finished_at ? when(sweep.finished_at) : "–"],
    ])));
    const sortBy = (by) => {
      state.descending = state.by === by ? !state.descending : false;
      state.by = by;
      replaceKeepingFocus(board, leaderboard(sweep, state, sortBy));
    };
    replaceKeepingFocus(board, leaderboard(sweep, state, sortBy));
    if (ended(sweep) !== drawnEnded) {
      drawnEnded = ended(sweep);
      plots.replaceChildren(...Object.keys(sweep.grid).map((p) => scoreByParam(sweep.trials, p, sweep.metric)));
      curveBox.replaceChildren(await curves(sweep, signal));
    }
  };
  await draw();
  poll(async () => {
    if (!ACTIVE.has(sweep.status)) return false;
    sweep = await api(`/sweeps/${id}`, { signal });
    await draw();
    return 2000;
  }, 2000, signal);
}
