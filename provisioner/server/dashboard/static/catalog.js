// Templates (their parameters, presets and versions; admins also push an archive and
// activate a stored version: members get neither button, and the API refuses them
// anyway), warm pools and capacity.

import { API, api, enc, get, post } from "./api.js";
import { isAdmin } from "./automation.js";
import { badge, h, time } from "./dom.js";

function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c)))))));
}

// Admins: a template archive (`tar czf demo.tar.gz -C demo .`, as `dockyard template push`
// sends) pushed as the template's active version.
function pushForm(done) {
  const file = h("input", { type: "file", id: "push-file", accept: ".tar.gz,.tgz,application/gzip", required: true });
  const label = h("input", { type: "text", id: "push-label", maxlength: 64 });
  const error = h("p", { class: "error", role: "alert", id: "push-error" });
  const result = h("p", { id: "push-result", role: "status" });
  return h("form", { class: "card", id: "push-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    result.textContent = "";
    if (!file.files.length) { error.textContent = "Choose a template archive (.tar.gz) first"; return; }
    const query = label.value.trim() ? `?label=${enc(label.value.trim())}` : "";
    try {
      const pushed = await api("POST", `${API}/templates${query}`, file.files[0]);
      await done(); // the list shows the new version before we say so
      result.textContent = `Pushed ${pushed.name} version ${pushed.version}`;
    } catch (err) {
      error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    }
  } },
  h("h2", { text: "Push a template" }),
  h("div", { class: "field" }, h("label", { for: "push-file", text: "Template archive (.tar.gz of the template's folder)" }), file),
  h("div", { class: "field" }, h("label", { for: "push-label", text: "Label (optional)" }), label),
  error, result, h("button", { type: "submit", id: "push-submit", text: "Push" }));
}

function versionsTable(tpl, versions, reload, error) {
  return table(`Versions of ${tpl.name}`, ["Version", "Label", "Created", "Pushed", "Active"],
    versions.map((v) => [v.version, v.label || "", time(v.created_at), v.pushed ? "yes" : "",
      v.active ? "active" : (isAdmin() // the folder on disk's version too (not stored yet)
        ? h("button", { type: "button", class: "activate", "data-version": v.version,
          "aria-label": `Activate ${tpl.name} version ${v.version}`, text: "Activate", onclick: async () => {
            error.textContent = "";
            try {
              await post(`${API}/templates/${enc(tpl.name)}/versions/${enc(v.version)}/activate`);
            } catch (err) {
              error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
            }
            reload();
          } })
        : "")]));
}

export function showTemplates(main) {
  const list = h("div", { id: "templates" });
  const error = h("p", { class: "error", role: "alert", id: "templates-error" });
  main.append(h("h1", { text: "Templates" }), error);
  const load = async () => {
    const { templates } = await get(`${API}/templates`);
    list.replaceChildren();
    for (const tpl of templates) {
      const versions = h("div", { class: "versions" });
      const showVersions = async () => {
        const found = await get(`${API}/templates/${enc(tpl.name)}/versions`);
        versions.replaceChildren(versionsTable(tpl, found.versions || [], () => load().then(() => {
          const again = document.querySelector(`article[data-template="${CSS.escape(tpl.name)}"] button.show-versions`);
          if (again) again.click();
        }), error));
        more.hidden = true;
      };
      const more = h("button", { type: "button", class: "show-versions", text: "Show versions",
        "aria-label": `Show versions of ${tpl.name}`, onclick: () => showVersions().catch((err) => { error.textContent = err.message; }) });
      list.append(h("article", { class: "card", "data-template": tpl.name },
        h("h2", { text: tpl.name }),
        h("p", { text: tpl.description || "" }),
        h("p", { class: "muted", text: `version ${tpl.version} · backend ${tpl.backend} · presets: ${tpl.presets.join(", ")}` }),
        table(`Parameters of ${tpl.name}`, ["Name", "Type", "Default", "Description"],
          tpl.parameters.map((p) => [p.name, p.type + (p.secret ? " (secret)" : ""),
            p.secret ? "" : JSON.stringify(p.default ?? null), p.description || ""])),
        h("p", {}, h("a", { href: `#/new?template=${enc(tpl.name)}`, text: `New ${tpl.name} task` }), " ", more),
        versions));
    }
  };
  if (isAdmin()) main.append(pushForm(() => load().catch((err) => { error.textContent = err.message; })));
  main.append(list);
  load().catch((err) => { error.textContent = err.message; });
  return () => {};
}

export function showCapacity(main) {
  const box = h("div", { id: "capacity" });
  main.append(h("h1", { text: "Pools and capacity" }), box);
  (async () => {
    const [capacity, pools] = await Promise.all([get(`${API}/capacity`), get(`${API}/pools`)]);
    box.append(
      h("p", { id: "capacity-summary", text: capacity.summary + (capacity.draining ? " (draining)" : "") }),
      table("Waiting, first to start first", ["Task", "Kind", "Priority", "Waiting since", "Why"],
        capacity.queue.map((q) => [q.name || "(another user's)", q.kind, String(q.priority),
          time(q.waiting_since), q.message || ""])),
      h("h2", { text: "Warm pools" }),
      table("Warm workspaces", ["Member", "Template", "Preset", "Status", "Since"],
        pools.members.map((m) => [m.name, m.template, m.preset || "", badge(m), time(m.created_at)])));
  })().catch((err) => box.append(h("p", { class: "error", role: "alert", text: err.message })));
  return () => {};
}
