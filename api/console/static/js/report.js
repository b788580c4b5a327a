// Report: a deployment's timings — totals per node, component and action,
// the critical path, the slowest steps, and a Gantt chart of the steps per
// node (one row per node, one bar per step, critical-path steps marked).
import { api } from "./api.js";
import { h, fill, badge, errorBox, tableWrap, fmtDateTime } from "./ui.js";

export function render(root, { args, go }) {
  const id = args[0] || "";
  root.append(h("div.view-head", h("h1", "Timing report"),
    h("div.head-tools", h("a.btn.ghost.small", { href: "#/deploy/" + encodeURIComponent(id) }, "Deployment"))));
  const body = h("div#report", h("p.muted", "Loading…"));
  root.append(body);
  if (!id) {
    fill(body, h("p.empty", "Pick a deployment in the Deploy view to see its report."));
    return null;
  }
  let gone = false;
  api.report(id).then((r) => {
    if (!gone) fill(body, ...view(r));
  }).catch((err) => {
    if (!gone) fill(body, errorBox(err, "Cannot read the report."));
  });
  return () => { gone = true; };
}

const s1 = (x) => (Number(x) || 0).toFixed(1) + " s";

function view(r) {
  const onPath = new Set((r.critical_path || []).map((s) => s.id));
  return [
    h("section.card#report-summary",
      h("p", h("span.mono", r.id), " ", badge(r.state), " — ", h("strong", s1(r.total_s)), " in all, ",
        r.steps_timed + " of " + r.steps_total + " steps ran; started " + fmtDateTime(r.created) + "."),
      h("p", "Critical path: ", h("strong", s1(r.critical_path_s)), " over " + (r.critical_path || []).length + " steps (marked in the chart).")),
    h("section.card", h("h2", "Steps per node"), gantt(r, onPath)),
    h("div.report-groups",
      groups("Per node", r.nodes), groups("Per component", r.components), groups("Per action", r.actions)),
    h("section.card", h("h2", "Critical path"), steps(r.critical_path, r.created, true)),
    h("section.card", h("h2", "Slowest steps"), steps(r.slowest, r.created, false)),
  ];
}

function groups(title, list) {
  return h("section.card", h("h2", title), tableWrap(h("table.data",
    h("thead", h("tr", ["", "Steps", "Busy", "Longest"].map((t) => h("th", t)))),
    h("tbody", (list || []).map((g) => h("tr", h("td.mono", g.name), h("td", g.steps), h("td", s1(g.busy_s)), h("td", s1(g.max_s))))))));
}

function steps(list, created, waits) {
  const t0 = new Date(created).getTime();
  const cols = ["Step", "State", "Starts at", "Duration"].concat(waits ? ["Waited"] : []);
  return tableWrap(h("table.data.report-steps",
    h("thead", h("tr", cols.map((t) => h("th", t)))),
    h("tbody", (list || []).map((s) => h("tr",
      h("td.mono", s.id), h("td", badge(s.state)),
      h("td", "+" + s1((new Date(s.started).getTime() - t0) / 1000)), h("td", s1(s.duration_s)),
      waits ? h("td", s1(s.wait_s)) : null)))));
}

// gantt draws one row per node: each step a bar from its start to its end,
// on a time axis from the deployment's creation to its last step's end.
function gantt(r, onPath) {
  const list = r.steps || [];
  if (!list.length) return h("p.empty", "No step has run yet.");
  const t0 = new Date(r.created).getTime();
  let t1 = t0;
  for (const s of list) t1 = Math.max(t1, new Date(s.finished).getTime());
  const span = Math.max(1, t1 - t0);
  const nodes = [...new Set(list.map((s) => s.node))].sort();
  const NS = "http://www.w3.org/2000/svg";
  const el = (name, attrs, ...kids) => {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const k of kids) e.append(k);
    return e;
  };
  const LABEL = 120, W = 900, ROW = 26, TOP = 20;
  const x = (t) => LABEL + ((t - t0) / span) * (W - LABEL - 10);
  const svg = el("svg", { id: "gantt", viewBox: `0 0 ${W} ${TOP + nodes.length * ROW + 10}`, role: "img",
    "aria-label": "Steps per node over time", class: "gantt" });
  // A tick every tenth of the span, labelled in seconds.
  for (let i = 0; i <= 10; i++) {
    const t = t0 + (span * i) / 10;
    svg.append(el("line", { x1: x(t), x2: x(t), y1: TOP - 4, y2: TOP + nodes.length * ROW, class: "gantt-tick" }),
      el("text", { x: x(t), y: TOP - 8, "text-anchor": "middle", class: "gantt-axis" }, ((t - t0) / 1000).toFixed(0) + "s"));
  }
  nodes.forEach((n, i) => {
    const y = TOP + i * ROW;
    svg.append(el("text", { x: 4, y: y + ROW / 2 + 4, class: "gantt-node" }, n));
    for (const s of list.filter((s) => s.node === n)) {
      const a = new Date(s.started).getTime(), b = new Date(s.finished).getTime();
      const bar = el("rect", { x: x(a), y: y + 4, width: Math.max(1.5, x(b) - x(a)), height: ROW - 8, rx: 2,
        class: "gantt-bar s-" + s.state + (onPath.has(s.id) ? " critical" : ""), "data-step": s.id },
        el("title", {}, `${s.id}: ${s1(s.duration_s)} (${s.state})`));
      svg.append(bar);
    }
  });
  return h("div.gantt-wrap", svg, h("p.muted.small", "Each bar is a step; outlined bars are on the critical path. Hover a bar for its name and duration."));
}
