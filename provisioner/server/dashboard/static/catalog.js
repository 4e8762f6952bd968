// Read-only views: templates (their parameters, presets and versions), warm pools and
// capacity.

import { API, enc, get } from "./api.js";
import { badge, h, time } from "./dom.js";

function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c)))))));
}

export function showTemplates(main) {
  const list = h("div", { id: "templates" });
  main.append(h("h1", { text: "Templates" }), list);
  (async () => {
    const { templates } = await get(`${API}/templates`);
    for (const tpl of templates) {
      const versions = h("div");
      const more = h("button", { type: "button", text: "Show versions", onclick: async () => {
        const found = await get(`${API}/templates/${enc(tpl.name)}/versions`);
        versions.replaceChildren(table(`Versions of ${tpl.name}`, ["Version", "Labels", "Created", "Active"],
          (found.versions || []).map((v) => [v.version || v.hash || "", (v.labels || []).join(", "),
            time(v.created_at), v.active ? "yes" : ""])));
        more.hidden = true;
      } });
      list.append(h("article", { class: "card" },
        h("h2", { text: tpl.name }),
        h("p", { text: tpl.description || "" }),
        h("p", { class: "muted", text: `version ${tpl.version} · backend ${tpl.backend} · presets: ${tpl.presets.join(", ")}` }),
        table(`Parameters of ${tpl.name}`, ["Name", "Type", "Default", "Description"],
          tpl.parameters.map((p) => [p.name, p.type + (p.secret ? " (secret)" : ""),
            p.secret ? "" : JSON.stringify(p.default ?? null), p.description || ""])),
        h("p", {}, h("a", { href: `#/new?template=${enc(tpl.name)}`, text: `New ${tpl.name} task` }), " ", more),
        versions));
    }
  })().catch((err) => list.append(h("p", { class: "error", role: "alert", text: err.message })));
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
