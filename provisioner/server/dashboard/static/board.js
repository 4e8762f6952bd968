// The board: every visible task with its true status, filtered by status, owner,
// template, tag and priority; rows change in place as the stream reports.

import { badge, cost, detailText, h, statusKey, time } from "./dom.js";
import { onTasks, tasks } from "./live.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const STATUS_CHOICES = [
  ["", "any status"], ["backlog", "backlog"], ["pending", "pending"],
  ["initializing", "initializing"], ["working", "working"], ["idle", "idle"],
  ["input_required", "input required"], ["paused", "paused"], ["error", "error"],
  ["finished", "finished"],
];
const PRIORITY_CHOICES = [["", "any priority"], ["25", "low and up"], ["50", "normal and up"],
  ["75", "high and up"]];

function options(select, pairs, keep) {
  select.replaceChildren(...pairs.map(([value, label]) => h("option", { value, text: label })));
  select.value = pairs.some(([v]) => v === keep) ? keep : "";
}

function field(id, label, control) {
  control.id = id;
  return h("div", { class: "filter" }, h("label", { for: id, text: label }), control);
}

export function showBoard(main) {
  const status = h("select");
  const owner = h("select");
  const template = h("select");
  const tag = h("input", { type: "search", placeholder: "any tag", autocomplete: "off" });
  const priority = h("select");
  options(status, STATUS_CHOICES, "");
  options(priority, PRIORITY_CHOICES, "");
  const body = h("tbody");
  const empty = h("p", { class: "muted", id: "board-empty", text: "No tasks yet." });
  const count = h("p", { class: "muted", id: "board-count", "aria-live": "polite" });
  main.append(
    h("h1", { text: "Tasks" }),
    h("form", { class: "filters", role: "search", "aria-label": "Filter tasks",
      onsubmit: (e) => e.preventDefault() },
    field("f-status", "Status", status), field("f-owner", "Owner", owner),
    field("f-template", "Template", template), field("f-tag", "Tag", tag),
    field("f-priority", "Priority", priority)),
    count,
    h("div", { class: "table-wrap" }, h("table", { class: "board", id: "board" },
      h("caption", { class: "sr-only", text: "Tasks, newest first" }),
      h("thead", {}, h("tr", {}, ...["Task", "Status", "Detail", "Owner", "Template", "Tags",
        "Priority", "Cost", "Updated"].map((t) => h("th", { scope: "col", text: t })))),
      body)),
    empty,
  );
  const rows = new Map();

  function matches(task) {
    const key = statusKey(task);
    if (status.value === "finished" ? !FINISHED.has(task.status)
      : status.value && key !== status.value && task.status !== status.value) return false;
    if (owner.value && task.owner !== owner.value) return false;
    if (template.value && task.template !== template.value) return false;
    const wanted = tag.value.trim();
    if (wanted && !(task.tags || []).includes(wanted)) return false;
    if (priority.value && Number(task.priority) < Number(priority.value)) return false;
    return true;
  }

  function fill(row, task) {
    const link = h("a", { href: `#/task/${encodeURIComponent(task.id)}`, text: task.name });
    const cells = [
      h("th", { scope: "row" }, link, task.title && task.title !== task.name
        ? h("div", { class: "muted small", text: task.title }) : null),
      h("td", {}, badge(task)),
      h("td", { class: "detail", text: detailText(task) }),
      h("td", { text: task.owner }),
      h("td", { text: task.template }),
      h("td", {}, ...(task.tags || []).map((t) => h("span", { class: "tag", text: t }))),
      h("td", { text: String(task.priority) }),
      h("td", { text: cost(task) }),
      h("td", { text: time(task.updated_at) }),
    ];
    row.replaceChildren(...cells);
    row.dataset.status = statusKey(task);
    row.dataset.name = task.name;
    row.hidden = !matches(task);
  }

  function refreshChoices() {
    const owners = [...new Set([...tasks.values()].map((t) => t.owner))].sort();
    const templates = [...new Set([...tasks.values()].map((t) => t.template))].sort();
    options(owner, [["", "any owner"], ...owners.map((o) => [o, o])], owner.value);
    options(template, [["", "any template"], ...templates.map((t) => [t, t])], template.value);
  }

  function summarise() {
    const shown = [...rows.values()].filter((r) => !r.hidden).length;
    count.textContent = `${shown} of ${rows.size} tasks shown`;
    empty.hidden = rows.size > 0;
  }

  function rebuild() {
    refreshChoices();
    rows.clear();
    const sorted = [...tasks.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const fragment = document.createDocumentFragment();
    for (const task of sorted) {
      const row = h("tr", { "data-id": task.id });
      fill(row, task);
      rows.set(task.id, row);
      fragment.appendChild(row);
    }
    body.replaceChildren(fragment);
    summarise();
  }

  function change(task) {
    if (task === null) { rebuild(); return; }
    const row = rows.get(task.id);
    if (task.removed) {
      if (row) row.remove();
      rows.delete(task.id);
    } else if (row) {
      fill(row, task);
    } else {
      const created = h("tr", { "data-id": task.id });
      fill(created, task);
      rows.set(task.id, created);
      body.prepend(created);
      refreshChoices();
    }
    summarise();
  }

  const refilter = () => {
    for (const [id, row] of rows) row.hidden = !matches(tasks.get(id));
    summarise();
  };
  for (const control of [status, owner, template, priority]) control.addEventListener("change", refilter);
  tag.addEventListener("input", refilter);
  rebuild();
  return onTasks(change);
}
