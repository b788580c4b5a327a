// Status: every component instance with its node's usage, refreshed every
// few seconds, with restart and stop.
import { api } from "./api.js";
import { h, fill, badge, errorBox, meter, confirmDialog, toast, tableWrap, fmtTime } from "./ui.js";

const EVERY = 5000;

export function render(root) {
  const summary = h("div.summary#status-summary");
  const updated = h("span.muted.small#status-updated");
  const notice = h("div#status-notice");
  const body = h("div#status-body", h("p.muted", "Loading…"));
  const busy = new Set();
  let timer = null;
  let ctrl = null;
  let gone = false;

  const restartAll = h("button.btn.small", { type: "button", on: { click: () => act("restart", "all", "0.0.0.0") } }, "Restart all");
  root.append(
    h("div.view-head",
      h("h1", "Status"),
      h("div.head-tools", updated, restartAll,
        h("button.btn.small", { type: "button", on: { click: () => refresh() } }, "Refresh"))),
    summary,
    notice,
    body,
  );

  async function act(verb, comp, ip) {
    const whole = comp === "all" && ip === "0.0.0.0";
    const what = whole ? "every component on every node" : comp + " on " + ip;
    if (verb === "stop" || whole) {
      const ok = await confirmDialog(
        (verb === "stop" ? "Stop " : "Restart ") + what + "?",
        verb === "stop"
          ? "monit stops it and does not start it again until you restart it."
          : "monit restarts it; it is unavailable for a moment.",
        verb === "stop" ? "Stop" : "Restart",
      );
      if (!ok) return;
    }
    const key = verb + " " + comp + " " + ip;
    busy.add(key);
    fill(notice);
    draw();
    try {
      await (verb === "stop" ? api.stop(comp, ip) : api.restart(comp, ip));
      toast((verb === "stop" ? "Stopped " : "Restarted ") + what);
    } catch (err) {
      if (gone) return;
      fill(notice, errorBox(err, "Could not " + verb + " " + what + "."));
    } finally {
      busy.delete(key);
      refresh();
    }
  }

  let last = null;
  function draw() {
    if (!last) return;
    const rows = last;
    const down = rows.filter((r) => r.Status !== "RUNNING").length;
    fill(summary,
      h("span.pill.ok", rows.length - down + " running"),
      h("span.pill", { class: down ? "bad" : "none" }, down + " down"),
      h("span.pill.none", new Set(rows.map((r) => r.Ip)).size + " nodes"));
    if (!rows.length) {
      fill(body, h("p.empty", "The config lists no component instances."));
      return;
    }
    const table = h("table.data.responsive#status-table",
      h("thead", h("tr", ["Component", "IP", "Status", "CPU", "Memory", "Disk", ""].map((t) => h("th", t)))),
      h("tbody", rows.map((r) => {
        const rk = "restart " + r.Comp + " " + r.Ip;
        const sk = "stop " + r.Comp + " " + r.Ip;
        return h("tr", { dataset: { comp: r.Comp, ip: r.Ip } },
          h("td", { "data-label": "Component" }, h("strong", r.Comp)),
          h("td.mono", { "data-label": "IP" }, r.Ip),
          h("td", { "data-label": "Status" }, badge(r.Status)),
          h("td", { "data-label": "CPU" }, meter(r.Cpu)),
          h("td", { "data-label": "Memory" }, meter(r.Mem)),
          h("td", { "data-label": "Disk" }, meter(r.Disk)),
          h("td.actions", { "data-label": "" },
            h("button.btn.small", { type: "button", disabled: busy.has(rk), on: { click: () => act("restart", r.Comp, r.Ip) } }, busy.has(rk) ? "Restarting…" : "Restart"),
            h("button.btn.small.danger-ghost", { type: "button", disabled: busy.has(sk), on: { click: () => act("stop", r.Comp, r.Ip) } }, busy.has(sk) ? "Stopping…" : "Stop")));
      })));
    fill(body, tableWrap(table));
  }

  async function refresh() {
    clearTimeout(timer);
    if (gone) return;
    if (document.hidden) {
      timer = setTimeout(refresh, EVERY);
      return;
    }
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    try {
      const rows = await api.status(ctrl.signal);
      if (gone) return;
      last = Array.isArray(rows) ? rows : [];
      restartAll.hidden = !last.length;
      draw();
      updated.textContent = "updated " + fmtTime(new Date().toISOString());
    } catch (err) {
      if (gone || err.name === "AbortError") return;
      last = null;
      fill(summary);
      restartAll.hidden = true;
      if (err.status === 403) {
        fill(body, h("div.empty#status-noconfig",
          h("p", h("strong", "No config yet."), " Submit the cluster's config before its status can be shown."),
          h("a.btn.primary", { href: "#/config" }, "Open the config editor")));
      } else {
        fill(body, errorBox(err, "Cannot read the status."));
      }
      updated.textContent = "tried " + fmtTime(new Date().toISOString());
    } finally {
      if (!gone) timer = setTimeout(refresh, EVERY);
    }
  }

  refresh();
  return () => {
    gone = true;
    clearTimeout(timer);
    if (ctrl) ctrl.abort();
  };
}
