// Tasks made without anyone at the keyboard, and notifications out: schedules (their next
// runs; pause, resume, run now, delete), triggers (their deliveries: accepted, filtered,
// replayed, rejected or limited, and why) and outbound webhooks (their deliveries; a form
// adds one: webhook_form.js).
// Admins see everyone's; members their own (the API decides: another's answers 404).

import { API, api, enc, get, post } from "./api.js";
import { h, time } from "./dom.js";
import { webhookForm } from "./webhook_form.js";

export const isAdmin = () => document.body.dataset.role === "admin";
const all = () => (isAdmin() ? "?all=true" : "");

export function table(caption, headers, rows, attrs = {}) {
  return h("div", { class: "table-wrap" }, h("table", attrs,
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, ...rows.map(({ cells, ...row }) =>
      h("tr", row, ...cells.map((c) => h("td", {}, c)))))));
}

// A page: its heading, an error line, and a body `load` fills (and refills after an act);
// `above(refresh)`, if given, makes what stays above the body across refills (a form).
function page(main, title, id, load, above = null) {
  const box = h("div", { id });
  const error = h("p", { class: "error", role: "alert", id: `${id}-error` });
  main.append(h("h1", { text: title }), error);
  let loads = 0;
  const refresh = async () => {
    try {
      box.replaceChildren(...(await load(refresh, error)));
      box.dataset.loads = String(++loads); // how many times it was filled (tests wait on it)
    } catch (err) {
      error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    }
  };
  if (above) main.append(above(refresh));
  main.append(box);
  refresh();
  return () => {};
}

// A button that acts on the server, says what failed in `error`, then refreshes.
function actButton(label, name, act, refresh, error) {
  return h("button", { type: "button", "aria-label": `${label} ${name}`, text: label, onclick: async () => {
    error.textContent = "";
    try { await act(); } catch (err) {
      error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    }
    await refresh();
  } });
}

// Deleting needs a second click on the same button (no dialogs: a confirm() would block
// the page and screen readers).
function deleteButton(name, remove, refresh, error) {
  const button = h("button", { type: "button", class: "danger", "aria-label": `Delete ${name}`, text: "Delete" });
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Really delete?";
      return;
    }
    error.textContent = "";
    try { await remove(); } catch (err) { error.textContent = err.message; }
    await refresh();
  });
  return button;
}

const recipe = (r) => (r.template ? `${r.template}${r.preset ? ` / ${r.preset}` : ""}` : `target ${r.target}`);

function parameters(values) {
  const entries = Object.entries(values || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(" ") : "";
}

export function showSchedules(main) {
  return page(main, "Schedules", "schedules", async (refresh, error) => {
    const { schedules } = await get(`${API}/schedules${all()}`);
    if (!schedules.length) {
      return [h("p", { class: "muted", text: "No schedules. Make one with: dockyard schedule create NAME --cron \"0 9 * * 1-5\" --template T \"prompt\"" })];
    }
    const runs = h("div", { id: "schedule-runs" });
    const rows = schedules.map((s) => {
      const at = `/schedules/${enc(s.id)}`;
      const showRuns = h("button", { type: "button", "aria-label": `Runs of ${s.name}`, text: "Runs", onclick: async () => {
        const found = await get(`${API}${at}`);
        runs.replaceChildren(table(`Latest runs of ${s.name}`, ["Fire time", "State", "Task", "Why"],
          (found.fires || []).map((f) => ({ cells: [time(f.fire_at), f.state,
            f.task_id ? h("a", { href: `#/task/${enc(f.task_id)}`, text: f.task_id }) : "", f.reason || ""] }))));
      } });
      return { "data-schedule": s.name, "data-paused": s.paused ? "true" : "false", cells: [
        s.name,
        `${s.cron} (${s.timezone})`,
        recipe(s),
        parameters(s.parameters),
        s.paused ? h("span", { class: "badge st-paused", text: "paused" }) : h("span", { class: "badge st-working", text: "active" }),
        h("ul", { class: "plain" }, ...(s.next_runs || []).map((t) => h("li", { text: time(t) }))),
        `${s.concurrency} / catch-up ${s.catch_up}`,
        s.owner,
        h("div", { class: "actions" },
          s.paused
            ? actButton("Resume", s.name, () => post(`${API}${at}/resume`), refresh, error)
            : actButton("Pause", s.name, () => post(`${API}${at}/pause`), refresh, error),
          actButton("Run now", s.name, () => post(`${API}${at}/run`), refresh, error),
          showRuns,
          deleteButton(s.name, () => api("DELETE", `${API}${at}`), refresh, error)),
      ] };
    });
    return [table("Schedules", ["Name", "Cron", "Template", "Parameters", "State", "Next runs",
      "Overlap", "Owner", "Actions"], rows, { id: "schedule-table" }), runs];
  });
}

export function showTriggers(main) {
  return page(main, "Triggers", "triggers", async (refresh, error) => {
    const { triggers } = await get(`${API}/triggers${all()}`);
    if (!triggers.length) {
      return [h("p", { class: "muted", text: "No triggers. Make one with: dockyard trigger create NAME --form github-issue --template T" })];
    }
    const deliveries = h("div", { id: "trigger-deliveries" });
    const rows = triggers.map((t) => {
      const at = `/triggers/${enc(t.name)}`;
      const show = h("button", { type: "button", "aria-label": `Deliveries of ${t.name}`, text: "Deliveries", onclick: async () => {
        const found = await get(`${API}${at}/deliveries`);
        deliveries.replaceChildren(table(`Deliveries of ${t.name}, newest first`,
          ["Time", "Outcome", "Event", "Delivery", "Why", "Task", "From"],
          found.deliveries.map((d) => ({ "data-outcome": d.outcome, cells: [time(d.time),
            h("span", { class: `badge out-${d.outcome}`, text: d.outcome }), d.event || "", d.delivery_id || "",
            d.reason || "", d.task_id ? h("a", { href: `#/task/${enc(d.task_id)}`, text: d.task_id }) : "",
            d.remote || ""] })), { id: "delivery-table" }));
      } });
      return { "data-trigger": t.name, cells: [
        t.name, t.form, recipe(t), parameters(t.parameters),
        h("code", { text: `${API}/triggers/${t.name}` }), t.filter || "", t.owner,
        h("div", { class: "actions" }, show,
          deleteButton(t.name, () => api("DELETE", `${API}${at}`), refresh, error)),
      ] };
    });
    return [table("Triggers", ["Name", "Form", "Template", "Parameters", "URL", "Filter", "Owner",
      "Actions"], rows, { id: "trigger-table" }), deliveries];
  });
}

export function showWebhooks(main) {
  return page(main, "Webhooks", "webhooks", async (refresh, error) => {
    const [{ webhooks }, { deliveries }] = await Promise.all([
      get(`${API}/webhooks${all()}`), get(`${API}/webhooks/deliveries?limit=100`)]);
    const hooks = webhooks.length
      ? table("Webhooks (signed POSTs per task event)", ["Id", "URL", "Events", "Scope", "Owner", "Created", "Actions"],
        webhooks.map((w) => ({ "data-webhook": w.id, cells: [w.id, w.url, (w.events || []).join(", "),
          w.task_id ? `task ${w.task_id}` : (w.all ? "every user's tasks" : "the owner's tasks"),
          w.owner, time(w.created_at),
          deleteButton(w.id, () => api("DELETE", `${API}/webhooks/${enc(w.id)}`), refresh, error)] })),
        { id: "webhook-table" })
      : h("p", { class: "muted", text: "No webhooks. Add one above, or with: dockyard webhook add URL --events completed,input_required" });
    return [hooks, h("h2", { text: "Latest deliveries (yours)" }),
      table("Deliveries, newest first", ["Time", "Event", "Task", "State", "Attempts", "Status", "Error"],
        deliveries.map((d) => ({ "data-state": d.state, cells: [time(d.created_at), d.event,
          h("a", { href: `#/task/${enc(d.task_id)}`, text: d.task_id }), d.state, String(d.attempts ?? ""),
          d.last_status === null || d.last_status === undefined ? "" : String(d.last_status), d.last_error || ""] })))];
  }, (refresh) => webhookForm(isAdmin(), refresh));
}
