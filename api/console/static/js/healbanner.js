// The heal banner: while auto-heal's meltdown guard holds, or auto-heal is
// switched off, every view says so at the top, with the switch to turn it
// on again. Polled every 10 s.
import { api } from "./api.js";
import { h, fill, toast } from "./ui.js";

let timer = null;

export function startHealBanner() {
  stopHealBanner();
  const el = document.getElementById("banner");
  async function check() {
    let s;
    try {
      s = await api.heal();
    } catch (_) {
      return; // the engine or the service is away: the views say so
    }
    const on = h("button.btn.small", { type: "button", on: { click: enable } }, "Switch auto-heal on again");
    if (s && s.meltdown && s.meltdown.active) {
      fill(el, h("strong", "Meltdown guard: auto-heal holds. "), s.meltdown.reason || "", " ", on);
      el.className = "banner danger";
      el.hidden = false;
    } else if (s && (!s.enabled || !s.config_enabled)) {
      fill(el, h("strong", "Auto-heal is off"), s.config_enabled ? " (switched off at run time). " : " (the config's heal property). ", s.config_enabled ? on : null);
      el.className = "banner";
      el.hidden = false;
    } else {
      el.hidden = true;
    }
  }
  async function enable() {
    try {
      await api.setHeal(true);
      toast("Auto-heal is on");
    } catch (err) {
      toast("Could not switch auto-heal on: " + err.message, "error");
    }
    check();
  }
  check();
  timer = setInterval(check, 10000);
}

export function stopHealBanner() {
  if (timer) clearInterval(timer);
  timer = null;
  const el = document.getElementById("banner");
  if (el) el.hidden = true;
}
