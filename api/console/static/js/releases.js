// Releases: the BOSH releases the engine keeps, and an upload with its
// progress. The tarball streams from the browser; the engine checks every
// job and package against release.MF before it keeps anything.
import { api, token, ApiError } from "./api.js";
import { h, fill, errorBox, toast } from "./ui.js";

// upload sends a file with XMLHttpRequest, which reports upload progress
// (fetch does not).
function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/deployment-engine/releases");
    xhr.setRequestHeader("Authorization", "Bearer " + token());
    xhr.setRequestHeader("Content-Type", "application/gzip");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError(0, "Cannot reach the engine."));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* keep null */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ created: xhr.status === 201, body });
      else reject(new ApiError(xhr.status, (body && body.error) || xhr.statusText));
    };
    xhr.send(file);
  });
}

export function render(root) {
  const body = h("div#releases-body", h("p.muted", "Loading…"));
  const input = h("input#release-file", { type: "file", accept: ".tgz,.tar.gz,application/gzip" });
  const bar = h("progress#release-progress", { max: 100, value: 0, hidden: true });
  const msg = h("p#release-upload-result.small", { role: "status" });
  const button = h("button.btn.primary#release-upload", { type: "button", on: { click: () => send() } }, "Upload");
  root.append(
    h("div.view-head", h("h1", "Releases"),
      h("div.head-tools", h("button.btn.small", { type: "button", on: { click: () => load() } }, "Refresh"))),
    h("p.muted.lead", "BOSH releases uploaded to the engine. A config with \"catalog\": \"bosh\" and \"release\": \"NAME[/VERSION]\" deploys one; its jobs are the config's components."),
    h("div.card", h("label", { for: "release-file" }, "Release tarball"), input, button, bar, msg),
    body);
  let gone = false;

  async function send() {
    const file = input.files && input.files[0];
    if (!file) {
      msg.textContent = "Choose a release tarball first.";
      return;
    }
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    msg.textContent = "Uploading " + file.name + "…";
    try {
      const { created, body: rel } = await upload(file, (f) => { bar.value = Math.round(f * 100); });
      msg.textContent = `${rel.name}/${rel.version} ${created ? "uploaded" : "was already stored"}: ${rel.jobs.length} jobs, ${rel.packages.length} packages.`;
      toast(`Release ${rel.name}/${rel.version} ${created ? "uploaded" : "already stored"}`);
      load();
    } catch (err) {
      msg.textContent = "Refused: " + err.message;
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
  }

  async function load() {
    try {
      const list = await api.releases();
      if (gone) return;
      if (!list || !list.length) {
        fill(body, h("p.empty", "No release uploaded yet."));
        return;
      }
      fill(body, h("table.table#releases-table",
        h("thead", h("tr", h("th", "Name"), h("th", "Version"), h("th", "Jobs"), h("th", "Packages"))),
        h("tbody", list.map((r) => h("tr", { dataset: { release: r.name + "/" + r.version } },
          h("td.mono", r.name), h("td.mono", r.version),
          h("td", r.jobs.join(", ")), h("td", r.packages.join(", ") || "–"))))));
    } catch (err) {
      if (!gone) fill(body, errorBox(err, "Cannot list the releases."));
    }
  }
  load();
  return () => { gone = true; };
}
