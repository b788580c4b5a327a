// Small DOM helpers shared by the views.

// h builds an element: h("div.card#id", {attrs, on: {click}}, ...children).
export function h(spec, attrs, ...children) {
  if (attrs == null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    if (attrs != null) children.unshift(attrs);
    attrs = {};
  }
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "class") {
      for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "style") {
      // Through the CSSOM: the engine's CSP refuses inline style attributes.
      for (const decl of String(v).split(";")) {
        const i = decl.indexOf(":");
        if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    } else if (k === "value") {
      el.value = v;
    } else if (k === "checked" || k === "disabled") {
      el[k] = !!v;
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties el and appends children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// badge is a coloured state label.
export function badge(state) {
  const s = String(state || "unknown");
  return h("span.badge", { class: "s-" + s.toLowerCase().replace(/[^a-z]/g, "") }, s);
}

// errorBox shows an API error the human way: its message, then each
// problem on its own line.
export function errorBox(err, title) {
  const box = h("div.error-box", { role: "alert" });
  const msg = err && err.message ? err.message : String(err);
  box.append(h("strong", title || describeStatus(err)), " ", msg);
  if (err && err.problems && err.problems.length) {
    box.append(h("ul", err.problems.map((p) => h("li", problemText(p)))));
  }
  return box;
}

function describeStatus(err) {
  const s = err && err.status;
  if (s === 0) return "Engine unreachable.";
  if (s === 401) return "Not signed in.";
  if (s === 403) return "Not allowed yet.";
  if (s === 404) return "Not found.";
  if (s === 409) return "Conflict.";
  if (s === 400) return "Rejected.";
  if (s >= 500) return "Engine error (" + s + ").";
  return "Error" + (s ? " (" + s + ")" : "") + ":";
}

export function problemText(p) {
  let t = (p.path ? p.path + ": " : "") + p.reason;
  const who = [p.component, p.ip].filter(Boolean).join(" on ");
  if (who) t += " (" + who + ")";
  return t;
}

// confirmDialog asks a yes/no question in the page's <dialog>.
export function confirmDialog(title, text, okLabel = "OK") {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
  });
}

// toast shows a short message at the bottom of the page.
export function toast(text, kind = "ok") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div#toasts.toasts", { "aria-live": "polite" });
    document.body.append(host);
  }
  const t = h("div.toast", { class: kind }, text);
  host.append(t);
  setTimeout(() => t.remove(), 5000);
}

export function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtDateTime(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return "";
  return d.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

export function fmtDuration(from, to) {
  if (!from) return "";
  const a = new Date(from).getTime();
  const b = to ? new Date(to).getTime() : Date.now();
  if (isNaN(a) || isNaN(b)) return "";
  let s = Math.max(0, Math.round((b - a) / 1000));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return m + "m " + s + "s";
  return Math.floor(m / 60) + "h " + (m % 60) + "m";
}

// kib formats RAM in KiB, the manual's unit.
export function kib(n) {
  if (!n || n <= 0) return "–";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " GiB";
  return Math.round(n / 1024) + " MiB";
}

// mb formats DISK in MB, the manual's unit.
export function mb(n) {
  if (!n || n <= 0) return "–";
  if (n >= 1000) return (n / 1000).toFixed(1) + " GB";
  return Math.round(n) + " MB";
}

// pct reads "81.74%" as a number (NaN when it is not one).
export function pct(s) {
  return parseFloat(String(s || "").replace("%", ""));
}

// meter is a small usage bar with its text.
export function meter(text) {
  const v = pct(text);
  const wrap = h("span.meter");
  if (!isNaN(v)) {
    const level = v >= 90 ? "hi" : v >= 70 ? "mid" : "lo";
    wrap.append(h("span.meter-bar", h("span.meter-fill", { class: level, style: "width:" + Math.min(100, Math.max(0, v)).toFixed(1) + "%" })));
    wrap.append(h("span.meter-text", v.toFixed(v < 10 ? 1 : 0) + "%"));
  } else {
    wrap.append(h("span.meter-text.muted", text || "–"));
  }
  return wrap;
}

// section is a titled card.
export function section(title, ...children) {
  return h("section.card", h("h2", title), ...children);
}

export function tableWrap(table) {
  return h("div.table-wrap", table);
}
