// Tiny DOM builders: h() for HTML, s() for SVG. Text always goes in as text nodes
// (never innerHTML), so names typed by users cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  let value;
  for (const [key, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (key.startsWith("on") && typeof v === "function") {
      el.addEventListener(key.slice(2), v);
    } else if (key === "value") {
      value = v;
    } else if (key === "dataset") {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(key, v === true ? "" : String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = String(value);
  return el;
}

/** Append children: strings/numbers become text nodes, arrays are flattened, null skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  return append(clear(el), children);
}

/** A labelled form field: <div class="field"><label for=id>..</label><input id=id ..></div>. */
let fieldCounter = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, value, attrs = {}) {
  return h(
    "select",
    { name, ...attrs, value },
    options.map((opt) => {
      const [val, text] = Array.isArray(opt) ? opt : [opt, opt];
      return h("option", { value: val }, text);
    }),
  );
}

/** Resolve after ms unless the signal aborts first (then resolve early too). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
