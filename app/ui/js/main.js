// Entry point: the key gate, hash routing (#/jobs/job_x) and the page frame.

import { api, clearKey, getKey, onUnauthorized, setKey } from "./api.js";
import { clear, field, h } from "./dom.js";
import { card, errorBox, onSubmit, pageHeader } from "./ui.js";
import { datasetPage, datasetsPage } from "./views/datasets.js";
import { helpPage, KEY_COMMAND } from "./views/help.js";
import { jobPage } from "./views/job.js";
import { jobsPage } from "./views/jobs.js";
import { modelPage, modelsPage } from "./views/models.js";
import { networkPage, networksPage } from "./views/networks.js";
import { overviewPage } from "./views/overview.js";
import { sweepPage, sweepsPage } from "./views/sweeps.js";

const ROUTES = [
  [/^\/?$/, overviewPage, "overview"],
  [/^\/datasets$/, datasetsPage, "datasets"],
  [/^\/datasets\/([^/]+)$/, datasetPage, "datasets"],
  [/^\/networks$/, networksPage, "networks"],
  [/^\/networks\/([^/]+)$/, networkPage, "networks"],
  [/^\/jobs$/, jobsPage, "jobs"],
  [/^\/jobs\/([^/]+)$/, jobPage, "jobs"],
  [/^\/sweeps$/, sweepsPage, "sweeps"],
  [/^\/sweeps\/([^/]+)$/, sweepPage, "sweeps"],
  [/^\/models$/, modelsPage, "models"],
  [/^\/models\/([^/]+)$/, modelPage, "models"],
  [/^\/help$/, helpPage, "help"],
];

const main = document.getElementById("main");
let current = null; // AbortController of the page on screen
let keyMessage = "";

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function setNav(section) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function renderKeyStatus() {
  const slot = document.getElementById("key-status");
  const key = getKey();
  slot.replaceChildren(
    ...(key
      ? [
          h("span", { class: "key-chip", title: "The API key this browser uses" }, `Key ${key.slice(0, 8)}…`),
          h("button", { type: "button", class: "button button-quiet", onclick: forgetKey }, "Change key"),
        ]
      : []),
  );
  document.body.classList.toggle("no-key", !key);
}

function forgetKey() {
  clearKey();
  keyMessage = "";
  route();
}

function keyPrompt() {
  const errors = errorBox();
  const input = h("input", {
    type: "password",
    name: "key",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "bp_…",
  });
  const form = h(
    "form",
    { class: "form", "aria-label": "Enter your API key" },
    field("API key", input, "Kept in this browser's localStorage and sent as Authorization: Bearer <key>."),
    errors,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button-primary" }, "Use this key")),
  );
  onSubmit(form, errors, async (data) => {
    const key = String(data.get("key")).trim();
    setKey(key);
    try {
      await api("/datasets?limit=1", { notify401: false });
    } catch (error) {
      clearKey();
      throw error.status === 401 ? new Error("This key was not accepted: it is unknown or revoked.") : error;
    }
    keyMessage = "";
    route();
  });
  const copy = h("button", { type: "button", class: "button button-quiet" }, "Copy");
  copy.addEventListener("click", async () => {
    await navigator.clipboard?.writeText(KEY_COMMAND).catch(() => {});
    copy.textContent = "Copied";
  });
  clear(main).append(
    h(
      "div",
      { class: "key-gate" },
      pageHeader("Welcome to Backprop", "Train neural networks and watch them learn."),
      keyMessage ? h("p", { class: "notice notice-warning", role: "alert" }, keyMessage) : null,
      card(
        "Enter your API key",
        h("p", {}, "Every request to the API needs a key. Make one on the server with the command line:"),
        h("div", { class: "command" }, h("code", {}, KEY_COMMAND), copy),
        h("p", {}, h("a", { href: "#/help" }, "How keys work and other CLI commands"), " · the key is shown once, when it is made."),
        form,
      ),
    ),
  );
  input.focus();
}

async function route() {
  current?.abort();
  current = new AbortController();
  renderKeyStatus();
  const { path, query } = parseHash();
  const match = ROUTES.map(([re, view, section]) => [re.exec(path), view, section]).find(([m]) => m);
  if (!getKey() && !path.startsWith("/help")) {
    setNav(null);
    keyPrompt();
    return;
  }
  if (!match) {
    setNav(null);
    clear(main).append(pageHeader("Not found", `There is no page ${path}.`), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  const [m, view, section] = match;
  setNav(section);
  const signal = current.signal;
  clear(main);
  try {
    await view(main, { params: m.slice(1), query, signal, navigate });
  } catch (error) {
    if (error.name === "AbortError" || signal.aborted) return;
    if (error.status === 401) return; // the key gate is already showing
    main.append(h("p", { class: "notice notice-error", role: "alert" }, error.message));
  }
  // Move focus to the new page's heading, as a page load would (keyboard and screen readers).
  if (!signal.aborted && !main.contains(document.activeElement)) main.querySelector("h1")?.focus({ preventScroll: true });
}

onUnauthorized(() => {
  clearKey();
  keyMessage = "The server did not accept the saved key (revoked?). Enter a valid key.";
  route();
});

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", route);
route();
