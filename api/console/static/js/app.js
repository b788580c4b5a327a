// The console's shell: sign in, the tabs, and a hash router over the views.
import { api, token, setToken, onUnauthorized, cluster, setCluster } from "./api.js";
import * as status from "./status.js";
import * as deploy from "./deploy.js";
import * as config from "./config.js";
import * as hardware from "./hardware.js";
import * as instances from "./instances.js";
import * as scale from "./scale.js";
import * as logs from "./logs.js";
import * as report from "./report.js";
import * as releases from "./releases.js";
import * as audit from "./audit.js";
import { startHealBanner, stopHealBanner } from "./healbanner.js";

const views = { status, instances, deploy, config, hardware, scale, logs, report, releases, audit };

const $ = (id) => document.getElementById(id);
let cleanup = null;

function showSignin(message) {
  if (cleanup) cleanup();
  cleanup = null;
  $("topbar").hidden = true;
  stopHealBanner();
  $("view").replaceChildren();
  $("signin").hidden = false;
  const err = $("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("token").focus();
}

// listClusters fills the cluster picker with the clusters the token
// reaches; a cluster shown that is no longer there gives way to the
// first one.
async function listClusters() {
  let list;
  try {
    list = await api.clusters();
  } catch (_) {
    return; // the views say what is wrong
  }
  const pick = $("cluster");
  const names = list.map((c) => c.name);
  if (!names.includes(cluster()) && names.length) {
    setCluster(names[0]);
    route();
  }
  pick.replaceChildren(...names.map((n) => {
    const o = document.createElement("option");
    o.value = n;
    o.textContent = n;
    return o;
  }));
  pick.value = cluster();
}

$("cluster").addEventListener("change", (e) => {
  setCluster(e.target.value);
  stopHealBanner();
  startHealBanner();
  route();
});

function route() {
  if (!token()) {
    showSignin();
    return;
  }
  $("signin").hidden = true;
  if ($("topbar").hidden) {
    startHealBanner();
    listClusters();
  }
  $("topbar").hidden = false;
  $("cluster").value = cluster();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = views[name] ? name : "status";
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.view === view);
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (cleanup) cleanup();
  cleanup = null;
  const root = $("view");
  root.replaceChildren();
  root.dataset.view = view;
  root.dataset.cluster = cluster();
  document.title = (view[0].toUpperCase() + view.slice(1)) + " · " + cluster() + " · Deployment Engine";
  cleanup = views[view].render(root, { args: rest.map(decodeURIComponent), go }) || null;
}

// go switches to a view, e.g. go("deploy", id).
function go(view, ...args) {
  const hash = "#/" + [view, ...args.map(encodeURIComponent)].join("/");
  if (location.hash === hash) route();
  else location.hash = hash;
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  const btn = e.target.querySelector("button");
  btn.disabled = true;
  try {
    await api.checkToken(t);
    setToken(t);
    $("token").value = "";
    if (!location.hash || location.hash === "#/") location.hash = "#/status";
    route();
  } catch (err) {
    showSignin(err.message);
  } finally {
    btn.disabled = false;
  }
});

$("signout").addEventListener("click", () => {
  setToken("");
  showSignin();
});

onUnauthorized(() => {
  setToken("");
  showSignin("The engine refused the API token (it may have changed). Sign in again.");
});

window.addEventListener("hashchange", route);
route();
