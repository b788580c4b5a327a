// Audit: who changed what — every change through the API with the token's
// name, and auto-heal's own actions (actor "engine"), newest first, with
// the config's changes as a diff. Filters go to the API as its query.
import { api } from "./api.js";
import { h, fill, badge, errorBox, tableWrap, fmtDateTime } from "./ui.js";

export function render(root) {
  const actor = h("input#audit-actor", { type: "text", placeholder: "actor (token name, engine)", "aria-label": "Actor" });
  const action = h("select#audit-action", { "aria-label": "Action" },
    ["", "config", "deploy", "scale", "restart", "stop", "heal", "release", "rollback", "cancel",
      "heal-restart", "heal-reapply", "heal-failing", "heal-meltdown"].map((a) => h("option", { value: a }, a || "every action")));
  const since = h("select#audit-since", { "aria-label": "Since" },
    [["", "all time"], ["1h", "last hour"], ["24h", "last day"], ["168h", "last week"]].map(([v, t]) => h("option", { value: v }, t)));
  const body = h("div#audit-body", h("p.muted", "Loading…"));
  const form = h("form.filters", { on: { submit: (e) => { e.preventDefault(); load(); } } },
    actor, action, since, h("button.btn.small", { type: "submit" }, "Show"));
  root.append(h("div.view-head", h("h1", "Audit"), h("div.head-tools", form)),
    h("p.muted.lead", "Every change through the API, by the name of the token that made it, and every action auto-heal took on its own."),
    body);
  let gone = false;
  async function load() {
    const q = {};
    if (actor.value.trim()) q.actor = actor.value.trim();
    if (action.value) q.action = action.value;
    if (since.value) q.since = since.value;
    try {
      const list = await api.audit(q);
      if (gone) return;
      const rows = (Array.isArray(list) ? list : []).slice().reverse();
      if (!rows.length) {
        fill(body, h("p.empty", "Nothing recorded that matches."));
        return;
      }
      fill(body, tableWrap(h("table.data.responsive#audit-table",
        h("thead", h("tr", ["Time", "Actor", "Action", "Object", "Result", "Detail"].map((t) => h("th", t)))),
        h("tbody", rows.map((e) => h("tr",
          h("td", { "data-label": "Time" }, fmtDateTime(e.time)),
          h("td.mono", { "data-label": "Actor" }, e.actor),
          h("td", { "data-label": "Action" }, e.action),
          h("td.mono", { "data-label": "Object" }, e.deployment ? h("a", { href: "#/deploy/" + encodeURIComponent(e.deployment) }, e.object + " " + e.deployment) : e.object),
          h("td", { "data-label": "Result" }, badge(e.result === "ok" ? "succeeded" : e.result === "held" ? "held" : "failed"), e.code ? " " + e.code : ""),
          h("td", { "data-label": "Detail" }, e.detail || "",
            e.diff && e.diff.length ? h("pre.diff", e.diff.join("\n")) : null)))))));
    } catch (err) {
      if (!gone) fill(body, errorBox(err, "Cannot read the audit trail."));
    }
  }
  load();
  return () => { gone = true; };
}
