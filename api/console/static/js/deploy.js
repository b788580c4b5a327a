// Deploy: start a deployment and follow it live — steps per node (state,
// attempt, timings) and the log — from its server-sent event stream, read
// with fetch() because EventSource cannot send the Authorization header.
import { api, readSSE } from "./api.js";
import { h, fill, badge, errorBox, tableWrap, fmtTime, fmtDateTime, fmtDuration } from "./ui.js";

const MAX_LINES = 10000;
const DONE = new Set(["succeeded", "unchanged", "failed", "skipped"]);
// PAGE is how many steps the table shows at once; POLL how often the
// page (and with it the summary's counts) is read again while it runs.
const PAGE = 200;
const POLL = 2000;
const FILTERS = ["", "failed", "running", "queued", "pending", "succeeded", "unchanged", "skipped"];

export function render(root, { args, go }) {
  const id = args[0] || "";
  const notice = h("div#deploy-notice");
  const startBtn = h("button.btn.primary#deploy-start", { type: "button", on: { click: start } }, "Deploy now");
  root.append(
    h("div.view-head", h("h1", "Deploy"), h("div.head-tools", startBtn)),
    h("p.muted.lead", "A deployment installs whatever the stored config lists and is not yet installed. Running it again resumes after a failure."),
    notice);
  let stop = () => {};
  let gone = false;

  // start shows the plan first; the deployment starts only when the
  // operator confirms it, and only if the cluster still matches the plan.
  async function start() {
    startBtn.disabled = true;
    fill(notice);
    try {
      const plan = await api.plan();
      if (gone) return;
      fill(notice, planView(plan, async () => {
        try {
          const rep = await api.deploy(plan.id);
          if (!gone) go("deploy", rep.id);
        } catch (err) {
          if (!gone) fill(notice, errorBox(err, err.status === 409 ? "Cannot start now." : "The deployment did not start."));
        }
      }, () => fill(notice)));
    } catch (err) {
      if (gone) return;
      if (err.status === 403) {
        fill(notice, h("div.error-box", { role: "alert" }, h("strong", "No config yet."), " Submit the cluster's config first. ",
          h("a", { href: "#/config" }, "Open the config editor")));
      } else {
        fill(notice, errorBox(err, err.status === 409 ? "Cannot start now." : "The deployment did not start."));
      }
    } finally {
      startBtn.disabled = false;
    }
  }

  if (id) {
    stop = follow(root, id);
  } else {
    root.append(recent(go));
  }
  return () => {
    gone = true;
    stop();
  };
}

// recent lists the deployments, newest first.
function recent(go) {
  const box = h("section.card#deploy-list", h("h2", "Deployments"), h("p.muted", "Loading…"));
  api.deployments().then((list) => {
    list = (Array.isArray(list) ? list : []).sort((a, b) => String(b.created).localeCompare(String(a.created)));
    const running = list.find((d) => d.state === "running" || d.state === "pending");
    if (running) {
      go("deploy", running.id);
      return;
    }
    if (!list.length) {
      fill(box, h("h2", "Deployments"), h("p.empty", "No deployment yet."));
      return;
    }
    fill(box, h("h2", "Deployments"), tableWrap(h("table.data.responsive",
      h("thead", h("tr", ["Deployment", "State", "Changed", "Started", "Took", "Timings"].map((t) => h("th", t)))),
      h("tbody", list.map((d) => h("tr",
        h("td", { "data-label": "Deployment" }, h("a.mono", { href: "#/deploy/" + encodeURIComponent(d.id) }, d.id)),
        h("td", { "data-label": "State" }, badge(d.state)),
        h("td", { "data-label": "Changed" }, d.changed ?? ""),
        h("td", { "data-label": "Started" }, fmtDateTime(d.created)),
        h("td", { "data-label": "Took" }, d.finished ? fmtDuration(d.created, d.finished) : ""),
        h("td", { "data-label": "Timings" }, h("a", { href: "#/report/" + encodeURIComponent(d.id) }, "report"))))))));
  }).catch((err) => fill(box, h("h2", "Deployments"), errorBox(err, "Cannot list the deployments.")));
  return box;
}

// follow shows one deployment live; it returns a function that stops it.
export function follow(root, id) {
  // A summary (total, counts) says the engine pages the steps: the table
  // shows one page (pageIds), read again every POLL while it runs; an
  // engine that sends every step has them all in steps.
  const state = { id, state: "pending", changed: 0, created: null, finished: null, error: "", steps: new Map(), batches: new Map(),
    paged: false, total: 0, counts: {}, components: {}, pageIds: [], matched: 0, offset: 0, filter: "" };
  const seen = new Set();
  const ctrl = new AbortController();
  let gone = false;
  let raf = 0;
  let tick = null;
  let poll = null;
  let stepEvents = 0;

  const head = h("div.deploy-head");
  const bar = h("div.progress", h("div.progress-fill"));
  const countBox = h("div.counts");
  const steps = h("div#deploy-steps");
  const filterSel = h("select#steps-filter", { "aria-label": "Show the steps in one state", on: { change: () => { state.filter = filterSel.value; state.offset = 0; readPage(); } } },
    FILTERS.map((f) => h("option", { value: f }, f || "all steps")));
  const prevBtn = h("button.btn.small#steps-prev", { type: "button", on: { click: () => turn(-PAGE) } }, "Previous");
  const nextBtn = h("button.btn.small#steps-next", { type: "button", on: { click: () => turn(PAGE) } }, "Next");
  const pageNote = h("span.muted.small#steps-page");
  const pager = h("div.log-tools#steps-pager", { hidden: true }, filterSel, prevBtn, pageNote, nextBtn);
  const batchBox = h("section.card#deploy-batches", { hidden: true });
  const compBox = h("section.card#deploy-components", { hidden: true });
  const nodeSel = h("select#log-node", { "aria-label": "Filter the log by node", on: { change: refilter } }, h("option", { value: "" }, "all nodes"));
  const compSel = h("select#log-comp", { "aria-label": "Filter the log by component", on: { change: refilter } }, h("option", { value: "" }, "all components"));
  const autoScroll = h("input#log-follow", { type: "checkbox", checked: true });
  const log = h("div.log#deploy-log", { role: "log", "aria-live": "off", tabindex: "0" });
  const streamNote = h("span.muted.small#stream-note", "connecting…");
  root.append(
    h("section.card#deploy-progress", head, bar, countBox, streamNote),
    batchBox,
    compBox,
    h("section.card", h("div.card-head", h("h2", "Steps per node"), pager), steps),
    h("section.card.log-card",
      h("div.card-head", h("h2", "Live log"),
        h("div.log-tools", nodeSel, compSel, h("label.toggle.small", autoScroll, h("span", "auto-scroll")))),
      log));

  log.addEventListener("scroll", () => {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    autoScroll.checked = atBottom;
  });
  autoScroll.addEventListener("change", () => { if (autoScroll.checked) log.scrollTop = log.scrollHeight; });

  const nodes = new Set();
  const comps = new Set();
  function addOption(sel, set, v) {
    if (!v || set.has(v)) return;
    set.add(v);
    const opts = [...set].sort();
    const cur = sel.value;
    fill(sel, sel.firstChild, opts.map((o) => h("option", { value: o }, o)));
    sel.value = cur;
  }
  function visible(line) {
    return (!nodeSel.value || line.dataset.node === nodeSel.value) && (!compSel.value || line.dataset.comp === compSel.value);
  }
  function refilter() {
    for (const l of log.children) l.hidden = !visible(l);
    if (autoScroll.checked) log.scrollTop = log.scrollHeight;
  }

  function addLog(l) {
    const key = [l.step, l.node, l.component, l.stream, l.seq, l.time].join("|");
    if (seen.has(key)) return;
    seen.add(key);
    addOption(nodeSel, nodes, l.node);
    addOption(compSel, comps, l.component);
    const line = h("div.log-line", { class: l.stream === "stderr" ? "err" : "", dataset: { node: l.node || "", comp: l.component || "" } },
      h("span.log-time", fmtTime(l.time)), h("span.log-src", (l.node || "") + " " + (l.component || "")), h("span.log-text", l.line));
    line.hidden = !visible(line);
    log.append(line);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (autoScroll.checked) log.scrollTop = log.scrollHeight;
  }

  function snapshot(d) {
    state.state = d.state || state.state;
    state.changed = d.changed ?? state.changed;
    state.created = d.created || state.created;
    state.finished = d.finished || state.finished;
    state.error = d.error || state.error;
    for (const s of d.steps || []) state.steps.set(s.id, { ...state.steps.get(s.id), ...s });
    for (const b of d.batches || []) state.batches.set(b.component + "#" + b.index, b);
    if (typeof d.total === "number") {
      // A summary, maybe with a page of steps.
      state.paged = true;
      state.total = d.total;
      state.counts = d.counts || {};
      state.components = d.components || {};
      if (d.batch) state.batches.set(d.batch.component + "#" + d.batch.index, { ...state.batches.get(d.batch.component + "#" + d.batch.index), ...d.batch });
      if (Array.isArray(d.steps) || typeof d.matched === "number") {
        state.pageIds = (d.steps || []).map((s) => s.id);
        state.matched = d.matched || 0;
      }
    }
  }

  // readPage reads the summary with the page of steps the table shows.
  async function readPage() {
    const query = { offset: String(state.offset), limit: String(PAGE) };
    if (state.filter) query.steps = state.filter;
    try {
      const d = await api.deploymentPage(id, query);
      if (gone) return d;
      snapshot(d);
      schedule();
      return d;
    } catch (err) {
      if (!gone) streamNote.textContent = "cannot read the steps: " + err.message;
      return null;
    }
  }

  function turn(by) {
    state.offset = Math.max(0, state.offset + by);
    readPage();
  }

  // counts are the steps in all, ended, failed and running: from the
  // summary and the steps known here (the event stream replays every
  // step event from the start), each the larger of the two.
  function counts() {
    const all = [...state.steps.values()];
    const known = { done: all.filter((s) => DONE.has(s.state)).length, failed: all.filter((s) => s.state === "failed").length,
      running: all.filter((s) => s.state === "running").length };
    if (!state.paged) return { total: all.length, ...known };
    const c = state.counts;
    const sumDone = [...DONE].reduce((n, st) => n + (c[st] || 0), 0);
    return { total: Math.max(state.total, all.length), done: Math.max(sumDone, known.done), failed: Math.max(c.failed || 0, known.failed),
      running: stepEvents ? known.running : c.running || 0 };
  }

  function onEvent(type, data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch (_) {
      return;
    }
    switch (type) {
      case "deployment":
        snapshot(ev);
        if (state.paged) readPage();
        break;
      case "started":
        state.state = ev.state || "running";
        state.created = state.created || ev.time;
        break;
      case "step": {
        stepEvents++;
        // A new attempt starts clean: no error or exit code of the last one.
        const prev = state.steps.get(ev.id) || {};
        state.steps.set(ev.id, { ...prev, ...ev, error: ev.error || "", exit_code: ev.exit_code ?? null, finished: ev.finished || null });
        break;
      }
      case "log":
        addLog(ev);
        break;
      case "batch":
        if (ev.batch) state.batches.set(ev.batch.component + "#" + ev.batch.index, ev.batch);
        break;
      case "finished":
        state.state = ev.state;
        state.changed = ev.changed;
        state.finished = ev.time;
        state.error = ev.error || "";
        break;
    }
    schedule();
  }

  function schedule() {
    if (!raf) raf = requestAnimationFrame(() => { raf = 0; draw(); });
  }

  function draw() {
    const { total, done, failed, running } = counts();
    const all = state.paged ? state.pageIds.map((sid) => state.steps.get(sid)).filter(Boolean) : [...state.steps.values()];
    const final = state.state === "succeeded" || state.state === "failed";
    fill(head,
      h("div.deploy-title", h("h2.mono", state.id), badge(state.state)),
      h("div.deploy-meta.muted.small",
        state.created ? "started " + fmtDateTime(state.created) : "",
        state.created ? " · " + (final ? "took " : "running for ") + fmtDuration(state.created, state.finished) : "",
        final ? " · " + state.changed + " changed" : ""),
      state.error ? h("div.error-box", h("strong", "Failed:"), " ", state.error) : null);
    const frac = total ? done / total : final ? 1 : 0;
    bar.className = "progress " + (failed || state.state === "failed" ? "bad" : final ? "ok" : "run");
    bar.firstChild.style.width = (frac * 100).toFixed(1) + "%";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuemax", String(total));
    fill(countBox, h("strong#deploy-count", done + "/" + total + " steps"),
      running ? h("span", running + " running") : null,
      failed ? h("span.bad-text", failed + " failed") : null);

    drawBatches();
    drawComponents();
    drawPager();
    if (!all.length) {
      fill(steps, h("p.muted", state.paged && total ? "No step " + (state.filter || "") + " here." : final ? "Nothing to do: every component is installed." : "Planning…"));
      return;
    }
    const byNode = new Map();
    for (const s of all) {
      if (!byNode.has(s.node)) byNode.set(s.node, []);
      byNode.get(s.node).push(s);
    }
    const nodesSorted = [...byNode.keys()].sort(ipCompare);
    const table = h("table.data.steps.responsive#steps-table",
      h("thead", h("tr", ["Component", "Action", "State", "Attempt", "Started", "Took", "Detail"].map((t) => h("th", t)))),
      nodesSorted.map((node) => {
        const list = byNode.get(node);
        const nd = list.filter((s) => DONE.has(s.state)).length;
        return h("tbody.node-group", { dataset: { node } },
          h("tr.node-row", h("th", { colspan: "7" }, h("span.mono", node), h("span.muted.small", " " + nd + "/" + list.length))),
          list.map((s) => h("tr", { class: "st-" + s.state, dataset: { step: s.id } },
            h("td", { "data-label": "Component" }, s.component),
            h("td", { "data-label": "Action" }, s.action),
            h("td", { "data-label": "State" }, badge(s.state)),
            h("td", { "data-label": "Attempt" }, s.attempt || ""),
            h("td", { "data-label": "Started" }, fmtTime(s.started)),
            h("td", { "data-label": "Took" }, s.started ? fmtDuration(s.started, s.finished) : ""),
            h("td.detail", { "data-label": "Detail" }, s.error ? s.error : s.exit_code != null && s.exit_code !== 0 ? "exit " + s.exit_code : ""))));
      }));
    fill(steps, tableWrap(table));
  }

  // drawPager shows which steps the table holds, when the engine pages them.
  function drawPager() {
    pager.hidden = !state.paged;
    if (!state.paged) return;
    const from = state.matched ? state.offset + 1 : 0;
    pageNote.textContent = "steps " + from + "–" + Math.min(state.offset + PAGE, state.matched) + " of " + state.matched;
    prevBtn.disabled = state.offset === 0;
    nextBtn.disabled = state.offset + PAGE >= state.matched;
  }

  // drawComponents shows the summary's steps per component: how many,
  // ended, failed and running.
  function drawComponents() {
    const names = Object.keys(state.components).sort();
    compBox.hidden = !state.paged || !names.length;
    if (compBox.hidden) return;
    const sum = (c, states) => states.reduce((n, st) => n + (c[st] || 0), 0);
    fill(compBox, h("h2", "Steps per component"),
      tableWrap(h("table.data.responsive#components-table",
        h("thead", h("tr", ["Component", "Steps", "Ended", "Failed", "Running"].map((t) => h("th", t)))),
        h("tbody", names.map((name) => {
          const c = state.components[name];
          const failed = c.failed || 0;
          return h("tr", { dataset: { component: name } },
            h("td.mono", { "data-label": "Component" }, name),
            h("td", { "data-label": "Steps" }, String(sum(c, Object.keys(c)))),
            h("td", { "data-label": "Ended" }, String(sum(c, [...DONE]))),
            h("td", { "data-label": "Failed", class: failed ? "bad-text" : "" }, String(failed)),
            h("td", { "data-label": "Running" }, String(c.running || 0)));
        })))));
  }

  // drawBatches shows a rollout's batches as they go: the canaries, then
  // each batch, with its nodes and state.
  function drawBatches() {
    const list = [...state.batches.values()];
    batchBox.hidden = !list.length;
    if (!list.length) return;
    fill(batchBox, h("h2", "Rollout"),
      h("ol.batches", list.map((b) => h("li.batch", { dataset: { component: b.component, index: String(b.index) } },
        h("span.mono", b.component), " ", b.canary ? h("strong", "canary") : "batch " + b.index, " ",
        h("span.mono.small", (b.nodes || []).join(", ")), " ", badge(b.state),
        b.error ? h("div.small.bad-text", b.error) : null))));
  }

  async function run() {
    let failures = 0;
    while (!gone) {
      let finished = false;
      try {
        const resp = await api.events(id, ctrl.signal);
        streamNote.textContent = "live";
        failures = 0;
        await readSSE(resp, (type, data) => {
          onEvent(type, data);
          if (type === "finished") finished = true;
        });
      } catch (err) {
        if (gone || err.name === "AbortError") return;
        if (err.status === 404 || err.status === 401) {
          fill(steps, errorBox(err, "Cannot follow " + id + "."));
          streamNote.textContent = "";
          return;
        }
        failures++;
        streamNote.textContent = "connection lost, retrying… (" + err.message + ")";
      }
      try {
        const d = state.paged ? await readPage() : await api.deployment(id);
        if (!d) throw new Error("no answer");
        snapshot(d);
        schedule();
        if (finished || d.state === "succeeded" || d.state === "failed") {
          streamNote.textContent = "finished";
          return;
        }
      } catch (err) {
        if (gone) return;
        streamNote.textContent = "cannot read the deployment: " + err.message;
      }
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * (1 + failures))));
    }
  }

  schedule();
  run();
  // A paged deployment's table and counts are read again while it runs.
  poll = setInterval(() => { if (state.paged && (state.state === "running" || state.state === "pending")) readPage(); }, POLL);
  // Durations of running steps grow: redraw every second while running.
  tick = setInterval(() => { if (state.state === "running" || state.state === "pending") schedule(); }, 1000);
  return () => {
    gone = true;
    ctrl.abort();
    clearInterval(tick);
    clearInterval(poll);
    if (raf) cancelAnimationFrame(raf);
  };
}

function ipCompare(a, b) {
  const pa = String(a).split(".").map(Number);
  const pb = String(b).split(".").map(Number);
  for (let i = 0; i < 4; i++) {
    if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
  }
  return String(a).localeCompare(String(b));
}

// planView shows what a deployment would do, per node, with each file's
// diff and the drift found, and asks before it deploys.
function planView(plan, confirm, cancel) {
  const nodes = (plan.nodes || []).filter((n) => n.actions.length || n.drift.length || n.error);
  const summary = plan.changes === 0 && plan.drifted === 0
    ? "Nothing would change: every step is applied as planned."
    : plan.changes + " action(s) on " + nodes.filter((n) => n.actions.length).length + " node(s), " + plan.drifted + " drifted file(s).";
  const okBtn = h("button.btn.primary#deploy-confirm", { type: "button", on: { click: () => { okBtn.disabled = true; confirm(); } } },
    plan.changes === 0 ? "Deploy anyway" : "Deploy this plan");
  return h("section.card#deploy-plan",
    h("h2", "Plan ", h("span.mono.small", plan.id)),
    h("p#plan-summary", summary),
    nodes.map((n) => h("div.plan-node", { dataset: { ip: n.ip } },
      h("h3.mono", n.ip),
      n.error ? h("p.field-error", n.error) : null,
      n.actions.length ? h("ul.plan-actions", n.actions.map((a) => h("li",
        h("strong", a.action), " ", h("span.mono", a.component), " — ", a.why,
        a.packages && a.packages.length ? h("div.small.muted", "packages: " + a.packages.join(" ")) : null,
        (a.files || []).map((f) => h("pre.diff", f.diff))))) : null,
      n.drift.length ? h("div.plan-drift", h("p", h("strong", "Drift"), " — files changed on the node since the engine wrote them:"),
        n.drift.map((d) => h("div", h("span.mono", d.path), " (" + d.component + ", found " + (d.found === "missing" ? "missing" : d.found.slice(0, 12)) + ")",
          d.diff ? h("pre.diff", d.diff) : null))) : null)),
    h("div.actions", h("button.btn#deploy-cancel", { type: "button", on: { click: cancel } }, "Cancel"), okBtn));
}
