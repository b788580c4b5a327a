// The engine's API: every call sends the API token as a Bearer header.
// Errors become ApiError with the server's message and problems.

const ROOT = "/deployment-engine";
const KEY = "de.token";
const CLUSTER = "de.cluster";

// cluster is the cluster the console shows: its routes are the manual's
// below /clusters/<name>/, the default cluster's the manual's own.
export function cluster() {
  return sessionStorage.getItem(CLUSTER) || "default";
}

export function setCluster(name) {
  if (name && name !== "default") sessionStorage.setItem(CLUSTER, name);
  else sessionStorage.removeItem(CLUSTER);
}

// base is where path's route is: the list of clusters is the engine's,
// every other route the shown cluster's.
function base(path) {
  const c = cluster();
  if (c === "default" || path === "/clusters" || path.startsWith("/clusters/")) return ROOT;
  return ROOT + "/clusters/" + encodeURIComponent(c);
}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

// ApiError is an answer the engine refused, or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems || [];
  }
}

// Listeners told when the token is refused (401) anywhere.
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

async function send(method, path, { body, query, signal, raw } = {}) {
  let url = base(path) + path;
  if (query) url += "?" + new URLSearchParams(query).toString();
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers, signal };
  if (body !== undefined) {
    if (typeof body === "string") {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Cannot reach the engine. Is it running? (" + e.message + ")");
  }
  if (!resp.ok) {
    const text = await resp.text().catch(() => "");
    let msg = text.trim() || resp.statusText;
    let problems = [];
    try {
      const j = JSON.parse(text);
      if (j && typeof j.error === "string") {
        msg = j.error;
        problems = j.problems || [];
      }
    } catch (_) {
      /* not JSON: keep the text */
    }
    const err = new ApiError(resp.status, msg, problems);
    if (resp.status === 401) unauthorized.forEach((fn) => fn(err));
    throw err;
  }
  if (raw) return resp;
  const text = await resp.text();
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

export const api = {
  // checkToken answers true when the engine accepts t.
  async checkToken(t) {
    let resp;
    try {
      resp = await fetch(ROOT + "/deployments", { headers: { Authorization: "Bearer " + t } });
    } catch (e) {
      throw new ApiError(0, "Cannot reach the engine. Is it running? (" + e.message + ")");
    }
    if (resp.status === 401) {
      let msg = "The engine refused this token.";
      try {
        const j = await resp.json();
        if (j.error) msg = "The engine refused this token: " + j.error;
      } catch (_) {
        /* keep the default */
      }
      throw new ApiError(401, msg);
    }
    return true;
  },
  clusters: () => send("GET", "/clusters"),
  config: () => send("GET", "/config"),
  configSchema: () => send("GET", "/config/schema"),
  precheck: () => send("GET", "/precheck"),
  setConfig: (cfg, check) => send("POST", "/config", { body: cfg, query: check ? undefined : { check: "0" } }),
  deploy: (plan) => send("POST", "/deploy", { query: plan ? { plan } : undefined }),
  plan: () => send("POST", "/plan"),
  deployments: () => send("GET", "/deployments"),
  deployment: (id) => send("GET", "/deployments/" + encodeURIComponent(id)),
  // deploymentPage is the deployment's summary with a page of its steps:
  // query {steps: "0" | "failed,running", offset, limit}.
  deploymentPage: (id, query) => send("GET", "/deployments/" + encodeURIComponent(id), { query }),
  status: (signal) => send("GET", "/status", { signal }),
  hardware: (comp = "all", ip = "0.0.0.0") => send("GET", "/hardware", { query: { comp, ip } }),
  instances: () => send("GET", "/instances"),
  restart: (name, ip) => send("PUT", "/restart", { body: { name, ip } }),
  stop: (name, ip) => send("PUT", "/stop", { body: { name, ip } }),
  scale: (Comp, Ip) => send("POST", "/scale", { body: { Comp, Ip } }),
  logs: () => send("GET", "/download"),
  log: (name) => send("GET", "/logs/" + encodeURIComponent(name), { raw: true }),
  // followLogs is a component's runtime log lines, live: an event stream.
  followLogs: (component, ip, tail, signal) =>
    send("GET", "/logs/follow", { raw: true, signal, query: ip ? { component, ip, tail } : { component, tail } }),
  releases: () => send("GET", "/releases"),
  audit: (query) => send("GET", "/audit", { query }),
  maintenance: () => send("GET", "/maintenance"),
  setMaintenance: (ip, on, reason) => send("PUT", "/nodes/" + encodeURIComponent(ip) + "/maintenance", { body: { on, reason } }),
  heal: () => send("GET", "/heal"),
  setHeal: (enabled) => send("PUT", "/heal", { body: { enabled } }),
  report: (id) => send("GET", "/deployments/" + encodeURIComponent(id) + "/report"),
  // events opens with the deployment's summary, not its every step.
  events: (id, signal) => send("GET", "/deployments/" + encodeURIComponent(id) + "/events", { raw: true, signal, query: { steps: "0" } }),
};

// readSSE reads a text/event-stream response body and calls onEvent(type, data)
// for every event. EventSource cannot send the Authorization header, so the
// stream is read with fetch and parsed here. Resolves when the stream ends.
export async function readSSE(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let type = "";
  let data = [];
  const dispatch = () => {
    if (data.length) onEvent(type || "message", data.join("\n"));
    type = "";
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        dispatch();
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let val = i < 0 ? "" : line.slice(i + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") type = val;
      else if (field === "data") data.push(val);
    }
  }
  dispatch();
}
