// The public /v1 API, with the key kept in localStorage.

const KEY_STORAGE = "backprop.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  localStorage.setItem(KEY_STORAGE, key);
}

export function clearKey() {
  localStorage.removeItem(KEY_STORAGE);
}

/** A refused request: status plus the API's detail list [{loc, msg, type}]. */
export class ApiError extends Error {
  constructor(status, detail) {
    const items = Array.isArray(detail)
      ? detail
      : [{ loc: [], msg: typeof detail === "string" ? detail : `HTTP ${status}`, type: "error" }];
    super(items.map(describeItem).join("; "));
    this.name = "ApiError";
    this.status = status;
    this.items = items;
  }
}

function describeItem(item) {
  const loc = (item.loc || []).filter((part, i) => !(i === 0 && ["body", "query", "path"].includes(part)));
  const where = loc.length ? `${loc.join(".")}: ` : "";
  return `${where}${item.msg}`;
}

let unauthorizedHandler = () => {};

/** Called when the API answers 401 (the key is missing, wrong or revoked). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

export async function errorFrom(response, { notify = true } = {}) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    detail = response.statusText || `HTTP ${response.status}`;
  }
  if (response.status === 401 && notify) unauthorizedHandler();
  return new ApiError(response.status, detail);
}

/**
 * Call /v1{path}. Options: method, json (a body to send as JSON), form (FormData),
 * signal, as ("json" | "arrayBuffer"), notify401 (false: a 401 does not
 * send the user back to the key prompt; for checking a new key).
 */
export async function api(path, { method = "GET", json, form, signal, as = "json", headers = {}, notify401 = true } = {}) {
  const init = { method, signal, headers: authHeaders({ Accept: "application/json", ...headers }) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(`/v1${path}`, init);
  if (!response.ok) throw await errorFrom(response, { notify: notify401 });
  if (response.status === 204) return null;
  if (as === "arrayBuffer") return response.arrayBuffer();
  return response.json();
}


/** Every item of a paginated list (follows offsets, at most `max` items). */
export async function listAll(path, { signal, max = 1000 } = {}) {
  const items = [];
  const join = path.includes("?") ? "&" : "?";
  for (let offset = 0; offset < max; ) {
    const page = await api(`${path}${join}limit=100&offset=${offset}`, { signal });
    items.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) break;
  }
  return items;
}
