// The task's work against its base commit (GET .../tasks/{id}/diff): commits, files and
// the diff itself. The diff is the agent's text, hostile as any: every line is set as
// text (textContent), classed by its first character, never parsed as HTML.

import { API, enc, get } from "./api.js";
import { h } from "./dom.js";

const MAX_LINES = 20000; // drawn at most; the rest is one `task diff` away

function lineClass(line) {
  if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff --git")) return "diff-file";
  if (line.startsWith("@@")) return "diff-hunk";
  if (line.startsWith("+")) return "diff-add";
  if (line.startsWith("-")) return "diff-del";
  return "diff-ctx";
}

export function diffView(taskId) {
  const since = h("input", { type: "checkbox", id: "diff-since" });
  const error = h("p", { class: "error", role: "alert", id: "diff-error" });
  const body = h("div", { id: "diff-body" });
  const show = h("button", { type: "button", id: "show-diff", text: "Show the diff", onclick: async () => {
    error.textContent = "";
    show.disabled = true;
    try {
      const checkpoint = since.checked ? "?since_checkpoint=true" : "";
      const d = await get(`${API}/tasks/${enc(taskId())}/diff${checkpoint}`);
      const lines = (d.diff || "").split("\n");
      if (lines.length && lines[lines.length - 1] === "") lines.pop();
      const pre = h("pre", { id: "diff", class: "diff", tabindex: 0, "aria-label": "The diff" },
        ...lines.slice(0, MAX_LINES).map((line) => h("span", { class: lineClass(line), text: `${line}\n` })));
      body.replaceChildren(
        h("p", { id: "diff-summary", text: `${d.files.length} file(s), +${d.added} −${d.deleted} on ${d.branch || "the task branch"} since ${String(d.from_commit || d.base_commit).slice(0, 12)}` }),
        d.commits && d.commits.length
          ? h("ul", { id: "diff-commits" }, ...d.commits.map((c) => h("li", { text: `${String(c.sha || c.commit || "").slice(0, 12)} ${c.subject || c.message || ""}` })))
          : null,
        h("ul", { id: "diff-files" }, ...d.files.map((f) => h("li", { text: `${f.path} (+${f.added ?? "bin"} −${f.deleted ?? "bin"})` }))),
        lines.length > MAX_LINES
          ? h("p", { class: "muted", text: `The first ${MAX_LINES} of ${lines.length} lines; all of it: dockyard task diff` })
          : null,
        pre);
    } catch (err) {
      error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    } finally {
      show.disabled = false;
    }
  } });
  return h("div", {},
    h("p", { class: "help", text: "The agent's work in the task's repository, committed or not (from its workspace; a paused task shows it once resumed)." }),
    h("p", {}, since, h("label", { for: "diff-since", text: " Since the last checkpoint only" })),
    h("div", { class: "actions" }, show), error, body);
}
