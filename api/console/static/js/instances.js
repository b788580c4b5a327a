// Instances: the cluster as `bosh instances --ps` shows it — each
// instance's group/index, state, zone and IP, and each job's monit
// processes underneath.
import { api } from "./api.js";
import { h, fill, badge, errorBox, tableWrap } from "./ui.js";

export function render(root) {
  const body = h("div#instances-body", h("p.muted", "Loading…"));
  root.append(
    h("div.view-head", h("h1", "Instances"),
      h("div.head-tools", h("button.btn.small", { type: "button", on: { click: () => load() } }, "Refresh"))),
    h("p.muted.lead", "A deployed manifest's instance groups (group/index), else each component on its node, with every job's processes as its node's agent last read them."),
    body);
  let gone = false;

  async function load() {
    try {
      const list = await api.instances();
      if (gone) return;
      if (!list.length) {
        fill(body, h("p.empty", "The config places no instance."));
        return;
      }
      const rows = [];
      for (const inst of list) {
        rows.push(h("tr.instance", { dataset: { id: inst.id } },
          h("td.mono", inst.id), h("td", "–"), h("td", badge(inst.state)), h("td", inst.az || "–"), h("td.mono", inst.ip)));
        for (const j of inst.jobs) {
          const procs = j.processes.length ? j.processes : [{ name: j.name, state: j.status + (j.reason ? ": " + j.reason : "") }];
          for (const p of procs) {
            rows.push(h("tr.process", { dataset: { id: inst.id, process: p.name } },
              h("td.muted", "~"), h("td.mono", p.name), h("td.small", p.state), h("td"), h("td")));
          }
        }
      }
      fill(body, tableWrap(h("table#instances-table",
        h("thead", h("tr", h("th", "Instance"), h("th", "Process"), h("th", "State"), h("th", "AZ"), h("th", "IP"))),
        h("tbody", rows))));
    } catch (err) {
      if (gone) return;
      if (err.status === 403) {
        fill(body, h("div.empty", h("p", h("strong", "No config yet."), " Instances come from the config."),
          h("a.btn.primary", { href: "#/config" }, "Open the config editor")));
      } else {
        fill(body, errorBox(err, "Cannot read the instances."));
      }
    }
  }
  load();
  return () => { gone = true; };
}
