// Scale out: add an instance of a component on a new IP, then follow the
// deployment that installs it.
import { api } from "./api.js";
import { h, fill, errorBox } from "./ui.js";

export function render(root, { go }) {
  const notice = h("div#scale-notice");
  const comp = h("select#scale-comp", { required: true }, h("option", { value: "" }, "Loading…"));
  const ip = h("input#scale-ip.mono", { type: "text", required: true, placeholder: "10.0.0.9", inputmode: "decimal", spellcheck: "false" });
  const current = h("p.small.muted#scale-current");
  const btn = h("button.btn.primary#scale-apply", { type: "submit" }, "Apply");
  const form = h("form.card.scale-form#scale-form", { novalidate: true },
    h("h2", "Add an instance"),
    h("div.field", h("label", { for: "scale-comp" }, "Component"), comp, current),
    h("div.field", h("label", { for: "scale-ip" }, "New IP"), ip, h("div.hint", "The node must accept the config's root password or key."), h("div.field-error", { hidden: true })),
    h("div.form-actions", btn));
  root.append(
    h("div.view-head", h("h1", "Scale out")),
    h("p.muted.lead", "The engine installs the component on the new node exactly as in a deploy, then reconfigures what depends on it."),
    notice, form);
  let cfg = null;
  let gone = false;

  function showCurrent() {
    const ips = (cfg && cfg.components && cfg.components[comp.value]) || [];
    current.textContent = comp.value ? "Now on: " + (ips.join(", ") || "no node") : "";
  }
  comp.addEventListener("change", showCurrent);

  api.config().then((c) => {
    if (gone) return;
    cfg = c;
    const names = Object.keys((c && c.components) || {}).sort();
    fill(comp, h("option", { value: "" }, "choose…"), names.map((n) => h("option", { value: n }, n)));
    if (names.length === 1) comp.value = names[0];
    showCurrent();
  }).catch((err) => {
    if (gone) return;
    fill(comp, h("option", { value: "" }, "—"));
    if (err.status === 404) {
      fill(notice, h("div.error-box", h("strong", "No config yet."), " Scale-out adds to a stored config. ", h("a", { href: "#/config" }, "Open the config editor")));
    } else {
      fill(notice, errorBox(err, "Cannot read the config."));
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    fill(notice);
    const fe = form.querySelector(".field-error");
    fe.hidden = true;
    ip.classList.remove("invalid");
    if (!comp.value || !ip.value.trim()) {
      fill(notice, h("div.error-box", h("strong", "Missing:"), " pick a component and type the new node's IP."));
      return;
    }
    btn.disabled = true;
    btn.textContent = "Starting…";
    try {
      const rep = await api.scale(comp.value, ip.value.trim());
      if (gone) return;
      go("deploy", rep.id);
    } catch (err) {
      if (gone) return;
      const mine = (err.problems || []).filter((p) => p.ip === ip.value.trim() || (p.path || "").startsWith("components."));
      if (mine.length) {
        fe.hidden = false;
        fe.textContent = mine.map((p) => p.reason).join("; ");
        ip.classList.add("invalid");
      }
      fill(notice, errorBox(err, "Scale-out did not start."));
    } finally {
      btn.disabled = false;
      btn.textContent = "Apply";
    }
  });
  return () => { gone = true; };
}
