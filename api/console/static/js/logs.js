// Logs: the engine's own log and each instance's log, to read or download.
import { api } from "./api.js";
import { h, fill, errorBox, tableWrap, toast } from "./ui.js";

export function render(root) {
  const body = h("div#logs-body", h("p.muted", "Loading…"));
  const viewer = h("div#log-viewer");
  root.append(
    h("div.view-head", h("h1", "Logs"),
      h("div.head-tools", h("button.btn.small", { type: "button", on: { click: () => load() } }, "Refresh"))),
    h("p.muted.lead", h("code", "local.log"), " is the engine's own log; ", h("code", "<component>_<n>.log"), " is the n-th instance's install and runtime log."),
    body, viewer);
  let gone = false;

  async function fetchText(name) {
    const resp = await api.log(name);
    return resp.blob();
  }

  async function download(name, btn) {
    btn.disabled = true;
    try {
      const blob = await fetchText(name);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast("Downloaded " + name);
    } catch (err) {
      fill(viewer, errorBox(err, "Cannot download " + name + "."));
    } finally {
      btn.disabled = false;
    }
  }

  async function show(name) {
    fill(viewer, h("section.card", h("h2.mono", name), h("p.muted", "Loading…")));
    try {
      const text = await (await fetchText(name)).text();
      if (gone) return;
      const pre = h("pre.log-text-view#log-view", text || "(empty)");
      fill(viewer, h("section.card", h("div.card-head", h("h2.mono", name), h("span.muted.small", text.split("\n").length + " lines")), pre));
      pre.scrollTop = pre.scrollHeight;
      viewer.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      if (gone) return;
      fill(viewer, errorBox(err, "Cannot read " + name + "."));
    }
  }

  async function load() {
    try {
      const names = await api.logs();
      if (gone) return;
      const list = Array.isArray(names) ? names : [];
      if (!list.length) {
        fill(body, h("p.empty", "No logs yet."));
        return;
      }
      fill(body, tableWrap(h("table.data#logs-table",
        h("thead", h("tr", h("th", "Log"), h("th", ""))),
        h("tbody", list.map((n) => {
          const dl = h("button.btn.small", { type: "button", on: { click: () => download(n, dl) } }, "Download");
          return h("tr", { dataset: { name: n } },
            h("td.mono", h("a", { href: "#/logs", on: { click: (e) => { e.preventDefault(); show(n); } } }, n)),
            h("td.actions", h("button.btn.small", { type: "button", on: { click: () => show(n) } }, "View"), dl));
        })))));
    } catch (err) {
      if (gone) return;
      fill(body, errorBox(err, "Cannot list the logs."));
    }
  }
  load();
  return () => { gone = true; };
}
