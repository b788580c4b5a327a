// Config editor: components and their IPs as rows, properties as fields.
// The engine's 400 problems are shown next to the fields they name
// (problem.path, e.g. "components.nats[1]" or "properties.domain").
// Secrets are never shown: a stored one appears as the "<redacted>" marker
// placeholder and is sent back as the marker unless a new one is typed.
import { api } from "./api.js";
import { h, fill, errorBox, tableWrap, kib, mb } from "./ui.js";
import { validate } from "./schema.js";

const REDACTED = "<redacted>";
const SECRETS = ["root", "password", "key"];

const KNOWN = {
  cloudfoundry: ["haproxy", "nats", "nfs_server", "database", "cloud_controller_ng", "etcd", "uaa", "login",
    "hm9000", "loggregator", "collector", "syslog_aggregator", "gorouter", "dea"],
  starter: ["haproxy", "web", "nats", "redis", "database", "etcd"],
};

// Property fields in form order: name, label, kind, hint.
const PROPS = [
  ["catalog", "Catalog", "catalog", "which components exist: cloudfoundry (default) or starter"],
  ["release", "Release", "text", "cf-release version (cloudfoundry catalog), e.g. v194"],
  ["domain", "Domain", "text", "the cluster's domain, e.g. cf.local"],
  ["home", "Home IP", "text", "the control machine's IP as the nodes reach it"],
  ["disksize", "Minimum disk (GB)", "number", "every node needs at least this much disk"],
  ["checkdisk", "Check disks", "flag", "check every node's disk before deploying"],
  ["adduser", "Add user", "flag", "create a user on every node"],
  ["user", "User", "text", "the user to create"],
  ["password", "User's password", "secret", ""],
  ["root", "Root password", "secret", "the nodes' root SSH password (all nodes share it)"],
  ["key", "SSH private key", "secretarea", "instead of the root password: a path on the control machine or the PEM text"],
];

export function render(root) {
  const notice = h("div#config-notice");
  const form = h("form#config-form.config-form", { novalidate: true, autocomplete: "off" });
  root.append(
    h("div.view-head", h("h1", "Config"),
      h("div.head-tools",
        h("button.btn.small#config-precheck", { type: "button", title: "Run every pre-check again on the stored config", on: { click: () => precheck() } }, "Pre-check"),
        h("button.btn.small", { type: "button", on: { click: () => load() } }, "Reload"))),
    notice, form);

  let checkNodes = true; // the toggle keeps its state across reloads
  let schema = null; // the engine's config schema: the form checks itself as it is typed
  api.configSchema().then((s) => { schema = s; }).catch(() => { /* the engine checks on save */ });
  const live = h("div#config-live.small", { role: "status", "aria-live": "polite" });
  let stored = {}; // secret name -> stored value (the marker) when the engine holds one
  let gone = false;

  async function load(keepNotice) {
    if (!keepNotice) fill(notice);
    fill(form, h("p.muted", "Loading…"));
    let cfg = null;
    try {
      cfg = await api.config();
    } catch (err) {
      if (gone) return;
      if (err.status !== 404) {
        fill(form, errorBox(err, "Cannot read the config."));
        return;
      }
      if (!keepNotice) {
        fill(notice, h("div.info-box#config-empty", "No config stored yet: describe the cluster below, then save it."));
      }
    }
    if (gone) return;
    build(cfg || { components: {}, properties: { catalog: "starter", checkdisk: 1, adduser: 0 } });
  }

  function build(cfg) {
    const props = cfg.properties || {};
    stored = {};
    for (const s of SECRETS) if (props[s]) stored[s] = props[s];

    const catalog = props.catalog || "cloudfoundry";
    const names = h("datalist#component-names");
    const setNames = (cat) => fill(names, (KNOWN[cat] || []).map((n) => h("option", { value: n })));
    setNames(catalog);

    const rows = h("div.comp-rows#comp-rows");
    const comps = cfg.components || {};
    for (const name of Object.keys(comps).sort()) rows.append(compRow(name, comps[name]));
    if (!rows.children.length) rows.append(compRow("", [""]));

    const propFields = h("div.prop-grid");
    for (const [name, label, kind, hint] of PROPS) {
      propFields.append(propField(name, label, kind, hint, props[name], setNames));
    }

    const check = h("input#check-nodes", { type: "checkbox", checked: checkNodes, on: { change: (e) => { checkNodes = e.target.checked; } } });
    fill(form,
      names,
      h("section.card",
        h("div.card-head", h("h2", "Components"),
          h("span.muted.small", "Each component and the IPs of its instances. Several components may share an IP.")),
        h("div.field-error.block", { dataset: { for: "components" }, hidden: true }),
        rows,
        h("button.btn.small#add-component", { type: "button", on: { click: () => { const r = compRow("", [""]); rows.append(r); r.querySelector("input").focus(); } } }, "+ Add component")),
      h("section.card",
        h("div.card-head", h("h2", "Properties")),
        h("div.field-error.block", { dataset: { for: "properties" }, hidden: true }),
        propFields),
      live,
      h("div.form-actions",
        h("label.toggle", check, h("span", h("strong", "Check nodes"), " — log in to every node and check its hardware. Turn off to store the config without contacting the nodes.")),
        h("button.btn.primary#config-save", { type: "submit" }, "Save config")));
  }

  function compRow(name, ips) {
    const ipList = h("div.ip-list");
    const row = h("div.comp-row",
      h("div.comp-name",
        h("input.comp-input", { type: "text", value: name, placeholder: "component", list: "component-names", "aria-label": "Component name", spellcheck: "false" }),
        h("div.field-error", { hidden: true })),
      ipList,
      h("div.comp-tools",
        h("button.btn.small.add-ip", { type: "button", on: { click: () => { const i = ipInput(""); ipList.append(i); i.querySelector("input").focus(); } } }, "+ IP"),
        h("button.btn.small.danger-ghost.remove-comp", { type: "button", title: "Remove this component", on: { click: () => row.remove() } }, "Remove")),
      h("div.field-error.row-error", { hidden: true }));
    for (const ip of ips.length ? ips : [""]) ipList.append(ipInput(ip));
    return row;
  }

  function ipInput(ip) {
    const wrap = h("div.ip-item",
      h("div.ip-line",
        h("input.ip-input.mono", { type: "text", value: ip, placeholder: "10.0.0.1", inputmode: "decimal", "aria-label": "IP address", spellcheck: "false" }),
        h("button.icon-btn", { type: "button", title: "Remove this IP", "aria-label": "Remove this IP", on: { click: () => wrap.remove() } }, "×")),
      h("div.field-error", { hidden: true }));
    return wrap;
  }

  function propField(name, label, kind, hint, value, setNames) {
    const id = "prop-" + name;
    let input;
    if (kind === "catalog") {
      const opts = ["cloudfoundry", "starter"];
      if (value && !opts.includes(value)) opts.push(value);
      input = h("select", { id, on: { change: (e) => setNames(e.target.value) } },
        opts.map((o) => h("option", { value: o, selected: (value || "cloudfoundry") === o }, o)));
    } else if (kind === "flag") {
      const v = value === undefined || value === null || value === "" ? "" : String(Number(value));
      input = h("select", { id },
        h("option", { value: "", selected: v === "" }, "—"),
        h("option", { value: "1", selected: v === "1" }, "Yes (1)"),
        h("option", { value: "0", selected: v === "0" }, "No (0)"));
    } else if (kind === "number") {
      input = h("input", { id, type: "number", min: "0", step: "1", value: value ?? "" });
    } else if (kind === "secret" || kind === "secretarea") {
      const has = !!value;
      const ph = has ? REDACTED : "not set";
      input = kind === "secret"
        ? h("input.secret", { id, type: "password", placeholder: ph, autocomplete: "new-password", spellcheck: "false" })
        : h("textarea.secret", { id, rows: "2", placeholder: ph, spellcheck: "false", autocomplete: "off" });
      hint = (hint ? hint + ". " : "") + (has ? "Stored; kept unless you type a new one." : "");
    } else {
      input = h("input", { id, type: "text", value: value ?? "", spellcheck: "false" });
    }
    input.dataset.prop = name;
    input.dataset.path = "properties." + name;
    return h("div.field", { class: "f-" + name },
      h("label", { for: id }, label),
      input,
      hint ? h("div.hint", hint) : null,
      h("div.field-error", { hidden: true }));
  }

  // collect reads the form into a config, tagging each element with the
  // problem path that names it; local mistakes come back as problems.
  function collect() {
    const components = {};
    const local = [];
    for (const row of form.querySelectorAll(".comp-row")) {
      const nameEl = row.querySelector(".comp-input");
      const name = nameEl.value.trim();
      const ipEls = [...row.querySelectorAll(".ip-input")];
      const ips = [];
      for (const el of ipEls) {
        el.dataset.path = "";
        const v = el.value.trim();
        if (!v) continue;
        el.dataset.path = "components." + name + "[" + ips.length + "]";
        ips.push(v);
      }
      row.dataset.path = "components." + name;
      nameEl.dataset.path = "";
      if (!name && !ips.length) continue;
      if (!name) {
        row.dataset.path = "local." + local.length;
        local.push({ path: row.dataset.path, reason: "name this component" });
        continue;
      }
      if (components[name]) {
        row.dataset.path = "local." + local.length;
        local.push({ path: row.dataset.path, component: name, reason: "listed twice: put all its IPs in one row" });
        continue;
      }
      components[name] = ips;
    }
    const properties = {};
    for (const el of form.querySelectorAll("[data-prop]")) {
      const name = el.dataset.prop;
      const v = el.value.trim();
      if (SECRETS.includes(name)) {
        if (v) properties[name] = name === "key" ? el.value : v;
        else if (stored[name]) properties[name] = stored[name];
        continue;
      }
      if (v === "") continue;
      if (["disksize", "checkdisk", "adduser"].includes(name) && /^\d+$/.test(v)) properties[name] = Number(v);
      else properties[name] = v;
    }
    return { cfg: { components, properties }, local };
  }

  function clearProblems() {
    for (const el of form.querySelectorAll(".field-error")) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
  }

  // place shows each problem next to its field; it returns those that
  // name no field.
  function place(problems) {
    const left = [];
    for (const p of problems) {
      const target = findTarget(p.path || "");
      if (!target) {
        left.push(p);
        continue;
      }
      const { input, slot } = target;
      if (input) input.classList.add("invalid");
      slot.hidden = false;
      const reason = p.reason + (p.ip && input && input.classList.contains("ip-input") ? "" : p.ip ? " (" + p.ip + ")" : "");
      slot.textContent = slot.textContent ? slot.textContent + "; " + reason : reason;
      slot.dataset.problem = p.path;
    }
    return left;
  }

  function findTarget(path) {
    if (!path) return null;
    const sel = '[data-path="' + CSS.escape(path) + '"]';
    const el = form.querySelector(sel);
    if (el) {
      if (el.classList.contains("comp-row")) {
        return { input: el.querySelector(".comp-input"), slot: el.querySelector(".row-error") };
      }
      const field = el.closest(".ip-item, .field");
      return { input: el, slot: field.querySelector(".field-error") };
    }
    if (path === "components" || path === "properties") {
      return { input: null, slot: form.querySelector('.field-error.block[data-for="' + path + '"]') };
    }
    // components.nats[3] of a list the form no longer shows: the row.
    const m = /^components\.([^[]+)\[/.exec(path);
    if (m) return findTarget("components." + m[1]);
    return null;
  }

  // precheck runs every check again on the stored config (nodes, system,
  // DNS, agents) and shows its problems and warnings.
  async function precheck() {
    const btn = root.querySelector("#config-precheck");
    btn.disabled = true;
    fill(notice, h("p.muted", "Checking every node…"));
    try {
      const rep = await api.precheck();
      if (gone) return;
      const ok = !rep.problems.length && !rep.warnings.length;
      const box = h(ok ? "div.ok-box#precheck-result" : "div.info-box#precheck-result", { role: "status" },
        h("strong", "Pre-check: "), rep.hardware.length + " node(s) answered, " + rep.problems.length + " problem(s), " + rep.warnings.length + " warning(s).");
      if (rep.problems.length) box.append(h("ul.problems", rep.problems.map((p) => h("li", (p.ip ? p.ip + ": " : "") + p.reason))));
      if (rep.warnings.length) box.append(h("ul.warnings", rep.warnings.map((w) => h("li", w))));
      fill(notice, box);
    } catch (err) {
      if (!gone) fill(notice, errorBox(err, "Cannot run the pre-checks."));
    } finally {
      btn.disabled = false;
    }
  }

  // As the config is typed, the schema's problems show where the engine's
  // would, before anything is sent.
  let timer = 0;
  function checkLive() {
    if (!schema) return;
    clearProblems();
    const { cfg, local } = collect();
    const problems = local.concat(validate(schema, cfg));
    const left = place(problems);
    fill(live, problems.length
      ? h("span.live-bad", problems.length + " problem" + (problems.length > 1 ? "s" : "") + " so far" +
        (left.length ? ": " + left.map((p) => (p.path ? p.path + ": " : "") + p.reason).join("; ") : ""))
      : h("span.live-ok", "No problem found so far (the engine checks the nodes when you save)."));
  }
  const onEdit = () => {
    clearTimeout(timer);
    timer = setTimeout(checkLive, 250);
  };
  form.addEventListener("input", onEdit);
  form.addEventListener("change", onEdit);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(timer);
    clearProblems();
    fill(live);
    fill(notice);
    const { cfg, local } = collect();
    if (local.length) {
      const left = place(local);
      fill(notice, errorBox({ message: "fix the marked rows first.", problems: left }, "Not sent:"));
      return;
    }
    const save = form.querySelector("#config-save");
    const check = form.querySelector("#check-nodes").checked;
    save.disabled = true;
    save.textContent = check ? "Checking nodes…" : "Saving…";
    try {
      const rep = await api.setConfig(cfg, check);
      if (gone) return;
      fill(notice, stored_(rep || {}));
      await load(true);
    } catch (err) {
      if (gone) return;
      const left = place(err.problems || []);
      const placed = (err.problems || []).length - left.length;
      const box = errorBox({ status: err.status, message: err.message, problems: left },
        err.status === 400 ? "The engine rejected the config." : undefined);
      if (placed) box.append(h("p.small", placed + " problem" + (placed > 1 ? "s are" : " is") + " shown next to " + (placed > 1 ? "their fields" : "its field") + " below."));
      fill(notice, box);
      const first = form.querySelector(".invalid");
      if (first) first.focus();
    } finally {
      save.disabled = false;
      save.textContent = "Save config";
    }
  });

  function stored_(rep) {
    const box = h("div.ok-box#config-stored", { role: "status" },
      h("strong", "Config stored."), " ",
      rep.checked ? "Every node was checked." : "The nodes were not contacted (check off).");
    if (rep.warnings && rep.warnings.length) {
      box.append(h("ul.warnings", rep.warnings.map((w) => h("li", w))));
    }
    if (rep.hardware && rep.hardware.length) {
      box.append(tableWrap(h("table.data.compact",
        h("thead", h("tr", ["Node", "CPU", "RAM", "Disk"].map((t) => h("th", t)))),
        h("tbody", rep.hardware.map((n) => h("tr", h("td.mono", n.IP), h("td", n.CPU), h("td", kib(n.RAM)), h("td", mb(n.DISK))))))));
    }
    box.append(h("p.small", h("a", { href: "#/deploy" }, "Deploy it →")));
    return box;
  }

  load();
  return () => { gone = true; clearTimeout(timer); };
}
