// Hardware: what every node has (CPU cores, RAM, disk), in the manual's
// units underneath.
import { api } from "./api.js";
import { h, fill, errorBox, kib, mb } from "./ui.js";

export function render(root) {
  const body = h("div#hardware-body", h("p.muted", "Loading…"));
  root.append(
    h("div.view-head", h("h1", "Hardware"),
      h("div.head-tools", h("button.btn.small", { type: "button", on: { click: () => load() } }, "Refresh"))),
    h("p.muted.lead", "Each node's hardware as the engine last measured it over SSH."),
    body);
  let gone = false;

  async function load() {
    fill(body, h("p.muted", "Loading…"));
    try {
      let list = await api.hardware("all", "0.0.0.0");
      if (gone) return;
      if (!Array.isArray(list)) list = list ? [list] : [];
      if (!list.length) {
        fill(body, h("p.empty", "No nodes."));
        return;
      }
      // One card per node; the components on it underneath.
      const byIP = new Map();
      for (const n of list) {
        const ip = n.IP || n.Ip || "";
        if (!byIP.has(ip)) byIP.set(ip, { ...n, comps: [] });
        if (n.Comp && n.Comp !== "all") byIP.get(ip).comps.push(n.Comp);
      }
      fill(body, h("div.node-grid#hardware-grid", [...byIP.entries()].map(([ip, n]) =>
        h("article.node-card", { dataset: { ip } },
          h("h2.mono", ip),
          h("dl.specs",
            h("div", h("dt", "CPU"), h("dd", n.CPU ? n.CPU + (n.CPU === 1 ? " core" : " cores") : "–")),
            h("div", h("dt", "RAM"), h("dd", { title: n.RAM + " KiB" }, kib(n.RAM))),
            h("div", h("dt", "Disk"), h("dd", { title: n.DISK + " MB" }, mb(n.DISK)))),
          n.comps.length ? h("p.small.muted", n.comps.join(", ")) : null))));
    } catch (err) {
      if (gone) return;
      if (err.status === 403) {
        fill(body, h("div.empty", h("p", h("strong", "No config yet."), " The engine knows the nodes from the config."),
          h("a.btn.primary", { href: "#/config" }, "Open the config editor")));
      } else {
        fill(body, errorBox(err, "Cannot read the hardware."));
      }
    }
  }
  load();
  return () => { gone = true; };
}
