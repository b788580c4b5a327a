// Status: every component instance with its node's usage, refreshed every
// few seconds, with restart and stop, and each node's maintenance switch.
import { api } from "./api.js";
import { h, fill, badge, errorBox, meter, confirmDialog, toast, tableWrap, fmtTime } from "./ui.js";

const EVERY = 5000;

export function render(root) {
  const summary = h("div.summary#status-summary");
  const updated = h("span.muted.small#status-updated");
  const notice = h("div#status-notice");
  const body = h("div#status-body", h("p.muted", "Loading…"));
  const nodes = h("div#status-nodes");
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
    nodes,
  );

  // maint holds the nodes in maintenance by IP; null when the engine
  // did not say (an older engine): no switch is shown then.
  let maint = null;
  async function hold(ip, on, reason) {
    const key = "maintenance " + ip;
    busy.add(key);
    fill(notice);
    draw();
    try {
      await api.setMaintenance(ip, on, reason);
      toast(on ? ip + " is in maintenance" : ip + " is back in service");
    } catch (err) {
      if (gone) return;
      fill(notice, errorBox(err, "Could not " + (on ? "hold " + ip + " out." : "put " + ip + " back in service.")));
    } finally {
      busy.delete(key);
      refresh();
    }
  }

  // typed keeps the reasons being typed across refreshes.
  const typed = new Map();
  function drawNodes(rows) {
    if (!maint) {
      fill(nodes);
      return;
    }
    // A refresh does not take the field someone types in away.
    if (document.activeElement && document.activeElement.tagName === "INPUT" && nodes.contains(document.activeElement)) return;
    const ips = [...new Set(rows.map((r) => r.Ip))];
    fill(nodes, h("h2", "Nodes"),
      h("p.muted.small", "A node in maintenance is left alone: auto-heal does not touch it and deployments hold its steps until it is back in service."),
      tableWrap(h("table.data#maintenance-table",
        h("thead", h("tr", ["Node", "Maintenance", ""].map((t) => h("th", t)))),
        h("tbody", ips.map((ip) => {
          const m = maint.get(ip);
          const key = "maintenance " + ip;
          const reason = h("input.small", { type: "text", maxlength: 200, placeholder: "why (optional)", "aria-label": "Why " + ip + " is held out",
            on: { input: () => typed.set(ip, reason.value) } });
          reason.value = typed.get(ip) || "";
          return h("tr", { dataset: { ip } },
            h("td.mono", ip),
            h("td", m ? [badge("MAINTENANCE"), " ", (m.reason || "no reason given") + " (by " + m.actor + ", since " + fmtTime(m.since) + ")"] : "in service"),
            h("td.actions", m
              ? h("button.btn.small", { type: "button", disabled: busy.has(key), on: { click: () => hold(ip, false, "") } }, "Back in service")
              : [reason, h("button.btn.small.danger-ghost", { type: "button", disabled: busy.has(key), on: { click: () => { typed.delete(ip); hold(ip, true, reason.value); } } }, "Hold out")]));
        })))));
  }

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
    const held = rows.filter((r) => r.Status === "MAINTENANCE").length;
    const down = rows.filter((r) => r.Status !== "RUNNING" && r.Status !== "MAINTENANCE").length;
    fill(summary,
      h("span.pill.ok", rows.length - down - held + " running"),
      h("span.pill", { class: down ? "bad" : "none" }, down + " down"),
      held ? h("span.pill.none", held + " in maintenance") : null,
      h("span.pill.none", new Set(rows.map((r) => r.Ip)).size + " nodes"));
    drawNodes(rows);
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
          h("td", { "data-label": "Status", title: r.Reason || "" }, badge(r.Status)),
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
      try {
        maint = new Map((await api.maintenance()).map((m) => [m.ip, m]));
      } catch {
        maint = null;
      }
      if (gone) return;
      last = Array.isArray(rows) ? rows : [];
      restartAll.hidden = !last.length;
      draw();
      updated.textContent = "updated " + fmtTime(new Date().toISOString());
    } catch (err) {
      if (gone || err.name === "AbortError") return;
      last = null;
      fill(summary);
      fill(nodes);
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
