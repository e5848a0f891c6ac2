// The console's client of the /v1 API. With auth on, a 401 asks for a
// bearer token (kept in sessionStorage, for this tab only) and the call is
// made again with it. Failures become ApiError with the contract's code
// and message.

const TOKEN_KEY = "shale.console.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenChanged();
}

let onTokenChange = () => {};
export function watchToken(f) { onTokenChange = f; }
function tokenChanged() { onTokenChange(token()); }

/** Percent-encodes one path segment (`%DLQ%g` → `%25DLQ%25g`). */
export const seg = encodeURIComponent;

let asking = null;

/** Asks the user for a token (one dialog for all calls waiting on it). */
function askToken(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason;
  input.value = "";
  asking = new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", dismiss);
      dialog.removeEventListener("cancel", dismiss);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(value);
    };
    const form = document.getElementById("token-form");
    const cancel = document.getElementById("token-cancel");
    const submit = (e) => { e.preventDefault(); done(input.value.trim() || null); };
    const dismiss = (e) => { e.preventDefault(); done(null); };
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", dismiss);
    dialog.addEventListener("cancel", dismiss);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

async function call(method, path, { body, accept = "application/json" } = {}) {
  for (;;) {
    const headers = { Accept: accept };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      const reason = t ? "The token was refused; enter another one." : "This node requires a bearer token.";
      const given = await askToken(reason);
      if (given) {
        sessionStorage.setItem(TOKEN_KEY, given);
        tokenChanged();
        continue;
      }
    }
    return resp;
  }
}

async function failure(resp) {
  const text = await resp.text();
  try {
    const e = JSON.parse(text).error;
    if (e && e.code) return new ApiError(resp.status, e.code, e.message);
  } catch (_) { /* not the contract's shape */ }
  return new ApiError(resp.status, "HTTP_" + resp.status, text.slice(0, 300) || resp.statusText);
}

/** Calls the API; resolves to the JSON answer (null for 204). */
export async function api(method, path, body) {
  const resp = await call(method, path, { body });
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path) => api("GET", path);

/** A text endpoint (`/metrics`). */
export async function getText(path) {
  const resp = await call("GET", path, { accept: "text/plain" });
  if (!resp.ok) throw await failure(resp);
  return resp.text();
}
