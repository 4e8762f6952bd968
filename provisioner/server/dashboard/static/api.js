// Calls of the dashboard to Dockyard's API (/api/dockyard/v1; /api/v2 is Coder's too),
// with the session cookie (sent by the browser) and the CSRF token every state change
// needs (read from its cookie).

export const API = "/api/dockyard/v1";

export function csrfToken() {
  const found = document.cookie.split(";").map((c) => c.trim())
    .find((c) => c.startsWith("dockyard_csrf="));
  return found ? found.slice("dockyard_csrf=".length) : "";
}

export class ApiError extends Error {
  constructor(status, detail, hint) {
    super(typeof detail === "string" ? detail : "The request was refused");
    this.status = status;
    this.detail = detail;
    this.hint = hint || "";
  }
}

// `body`: sent as JSON; a Blob or File (a template archive) as application/gzip
export async function api(method, path, body) {
  const headers = { "x-dockyard-csrf": csrfToken() };
  const init = { method, headers, credentials: "same-origin" };
  if (body instanceof Blob) {
    headers["content-type"] = "application/gzip";
    init.body = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(path, init);
  if (reply.status === 401) {
    location.assign("/login");
    throw new ApiError(401, "Your session ended: sign in again");
  }
  let data = {};
  try { data = await reply.json(); } catch { data = {}; }
  if (!reply.ok) throw new ApiError(reply.status, data.detail || reply.statusText, data.hint);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const enc = encodeURIComponent;
