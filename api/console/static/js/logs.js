// Logs: the engine's own log and each instance's log, to read or download,
// and a component's log lines followed live from its nodes' agents.
import { api, readSSE } from "./api.js";
import { h, fill, errorBox, tableWrap, toast, fmtTime } from "./ui.js";

// FOLLOW_LINES is how many followed lines the view keeps.
const FOLLOW_LINES = 2000;

export function render(root) {
  const body = h("div#logs-body", h("p.muted", "Loading…"));
  const viewer = h("div#log-viewer");
  root.append(
    h("div.view-head", h("h1", "Logs"),
      h("div.head-tools", h("button.btn.small", { type: "button", on: { click: () => load() } }, "Refresh"))),
    h("p.muted.lead", h("code", "local.log"), " is the engine's own log; ", h("code", "<component>_<n>.log"), " is the n-th instance's install and runtime log."),
    body, followCard(), viewer);
  let gone = false;
  let unfollow = () => {};

  // followCard: pick a component (and a node), and Follow shows its lines
  // as its agents send them, the last 50 of each instance first, until
  // Stop, the view's end or the engine's.
  function followCard() {
    const comp = h("select#follow-comp", { "aria-label": "Component" });
    const ip = h("input#follow-ip", { placeholder: "every node", "aria-label": "Node IP", size: 14 });
    const btn = h("button.btn.small#follow-toggle", { type: "button", on: { click: toggle } }, "Follow");
    const note = h("span.muted.small#follow-note");
    const out = h("div.log#follow-log", { hidden: true });
    api.config().then((cfg) => {
      const names = Object.keys((cfg && cfg.components) || {}).sort();
      fill(comp, names.map((n) => h("option", { value: n }, n)));
    }).catch(() => { note.textContent = "no config yet"; });

    function toggle() {
      if (btn.textContent === "Stop") {
        unfollow();
        return;
      }
      const ctrl = new AbortController();
      btn.textContent = "Stop";
      out.hidden = false;
      fill(out);
      note.textContent = "live";
      unfollow = () => { ctrl.abort(); btn.textContent = "Follow"; note.textContent = "stopped"; unfollow = () => {}; };
      run(ctrl);
    }

    async function run(ctrl) {
      try {
        const resp = await api.followLogs(comp.value, ip.value.trim(), "50", ctrl.signal);
        await readSSE(resp, (type, data) => {
          if (type === "cut") note.textContent = "cut: " + JSON.parse(data).error;
          if (type !== "line") return;
          const l = JSON.parse(data);
          const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          out.append(h("div.log-line", h("span.log-time", fmtTime(l.time)), h("span.log-src", l.node + " " + l.component), h("span.log-text", l.line)));
          while (out.childElementCount > FOLLOW_LINES) out.firstElementChild.remove();
          if (stick) out.scrollTop = out.scrollHeight;
        });
        if (!gone && !ctrl.signal.aborted) { btn.textContent = "Follow"; if (note.textContent === "live") note.textContent = "the stream ended"; unfollow = () => {}; }
      } catch (err) {
        if (gone || err.name === "AbortError") return;
        btn.textContent = "Follow";
        unfollow = () => {};
        note.textContent = "";
        fill(out, errorBox(err, "Cannot follow " + comp.value + "."));
      }
    }

    return h("section.card#follow",
      h("div.card-head", h("h2", "Follow a component"), h("div.log-tools", comp, ip, btn, note)),
      out);
  }

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
  return () => { gone = true; unfollow(); };
}
