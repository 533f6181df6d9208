// Page building blocks shared by the views: headers, cards, tables, error boxes,
// form submission with error display, polling.

import { ApiError, api } from "./api.js";
import { h, sleep } from "./dom.js";

export function pageHeader(title, subtitle, ...actions) {
  return h(
    "header",
    { class: "page-header" },
    h("div", {}, h("h1", { tabindex: "-1" }, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    actions.length ? h("div", { class: "actions" }, actions) : null,
  );
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

export function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns, class: "empty" }, text));
}

/** A table: columns [{label, className?}], rows of cells (nodes or text). */
export function table(columns, rows, { caption, emptyText = "Nothing yet." } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.className }, c.label)))),
      h("tbody", {}, rows.length ? rows : emptyRow(columns.length, emptyText)),
    ),
  );
}

/** A live region that shows an error (ApiError lists each field problem). */
export function errorBox() {
  const box = h("div", { class: "error-box", role: "alert", hidden: true });
  box.show = (error) => {
    box.replaceChildren();
    if (error instanceof ApiError && error.items.length > 1) {
      box.append(h("strong", {}, "The server refused this:"), h("ul", {}, error.message.split("; ").map((m) => h("li", {}, m))));
    } else {
      box.append(String(error?.message ?? error));
    }
    box.hidden = false;
  };
  box.hide = () => {
    box.hidden = true;
    box.replaceChildren();
  };
  return box;
}

/**
 * Wire a form: on submit, disable its submit button, run action(formData), and show
 * refusals in the form's error box. The action's return value is passed to done().
 */
export function onSubmit(form, errors, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    errors.hide();
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
    try {
      await action(new FormData(form));
    } catch (error) {
      if (error.name === "AbortError") return;
      errors.show(error);
    } finally {
      if (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    }
  });
}

/**
 * Call fn every `ms` until the signal aborts (slower while the tab is hidden). fn may
 * return false to stop, or a number of milliseconds to wait next time. Errors go to
 * onError, and polling goes on.
 */
export async function poll(fn, ms, signal, onError = () => {}) {
  let delay = ms;
  while (!signal.aborted) {
    await sleep(document.hidden ? delay * 3 : delay, signal);
    if (signal.aborted) return;
    try {
      const result = await fn();
      if (result === false) return;
      delay = typeof result === "number" ? result : ms;
    } catch (error) {
      if (error.name === "AbortError") return;
      onError(error);
    }
  }
}

/**
 * Replace a container's content (a live list, say) without losing the keyboard focus:
 * an element focused inside it is found again in the new content by its href or label.
 */
export function replaceKeepingFocus(container, ...nodes) {
  const focused = container.contains(document.activeElement) ? document.activeElement : null;
  const key = focused && (focused.getAttribute("href") ?? focused.getAttribute("aria-label"));
  container.replaceChildren(...nodes);
  if (!key) return;
  const again = [...container.querySelectorAll("a, button, select, input")].find(
    (el) => el.getAttribute("href") === key || el.getAttribute("aria-label") === key,
  );
  again?.focus({ preventScroll: true });
}

export function numberInput(name, value, { min, max, step = "any", required = true } = {}) {
  return h("input", { type: "number", name, value, min, max, step, required, inputmode: "decimal" });
}

export function textInput(name, value = "", attrs = {}) {
  return h("input", { type: "text", name, value, autocomplete: "off", ...attrs });
}

export function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}` }, text);
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

/**
 * A table row's Delete button for `what` (e.g. "dataset") `name` at /v1`path`: asks to
 * confirm, deletes, says so in a toast (or why not), then calls `after`.
 */
export function deleteButton({ what, name, id, path, after }) {
  const label = name === id ? `${what} ${id}` : `${what} ${name} (${id})`;
  const remove = async () => {
    if (!window.confirm(`Delete ${label}?`)) return;
    try {
      await api(path, { method: "DELETE" });
      toast(`${what[0].toUpperCase()}${what.slice(1)} ${name} deleted.`);
      after();
    } catch (error) {
      toast(error.message);
    }
  };
  return h("button", { type: "button", class: "button button-quiet button-small", "aria-label": `Delete ${what} ${name}`, onclick: remove }, "Delete");
}

let toastTimer = null;
export function toast(text) {
  const region = document.getElementById("toast");
  region.textContent = text;
  region.classList.add("visible");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => region.classList.remove("visible"), 4000);
}
