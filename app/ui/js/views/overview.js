// The landing page: counts, getting-started steps and recent jobs (live).

import { api } from "../api.js";
import { h } from "../dom.js";
import { card, pageHeader, poll, replaceKeepingFocus } from "../ui.js";
import { jobsTable, listDelay } from "./jobs.js";

export async function overviewPage(main, { signal }) {
  const [datasets, networks, jobs, models] = await Promise.all(
    ["datasets", "networks", "jobs", "models"].map((r) => api(`/${r}?limit=8`, { signal })),
  );
  const stat = (label, page, href) =>
    h("a", { class: "stat", href }, h("span", { class: "stat-value" }, String(page.total)), h("span", { class: "stat-label" }, label));
  const step = (done, text, href, action) =>
    h("li", { class: done ? "done" : "" }, h("span", { class: "step-mark", "aria-hidden": "true" }, done ? "✓" : ""), text, " ", h("a", { href }, action));
  const recent = h("div", {});
  const renderJobs = (page) => {
    replaceKeepingFocus(recent, jobsTable(page.items, { compact: true }));
    return listDelay(page.items);
  };
  const delay = renderJobs(jobs);
  main.append(
    pageHeader("Overview", "Your datasets, networks, training jobs and models."),
    h(
      "div",
      { class: "stats" },
      stat("datasets", datasets, "#/datasets"),
      stat("networks", networks, "#/networks"),
      stat("jobs", jobs, "#/jobs"),
      stat("models", models, "#/models"),
    ),
    h(
      "div",
      { class: "grid-2 grid-wide-left" },
      card("Recent jobs", recent, h("p", {}, h("a", { href: "#/jobs" }, "All jobs"))),
      card(
        "Getting started",
        h(
          "ol",
          { class: "checklist" },
          step(datasets.total > 0, "Make a dataset.", "#/datasets", "Generate or upload"),
          step(networks.total > 0, "Define a network.", "#/networks", "Build one"),
          step(jobs.total > 0, "Train it.", "#/jobs", "Start a job"),
          step(models.total > 0, "Use the trained model.", "#/models", "Predict"),
        ),
      ),
    ),
  );
  poll(async () => renderJobs(await api("/jobs?limit=8", { signal })), delay, signal);
}
