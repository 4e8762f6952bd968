// Adding an outbound webhook, as `dockyard webhook add` does: the receiver's URL, the events
// to send, an optional signing secret (without one the server makes one, shown here once:
// it is never shown again), an optional task, and for admins every user's tasks. The
// server checks everything (URL scheme, credentials, private and metadata addresses, event
// names, the secret); its refusal is shown next to the field it is about.

import { API, post } from "./api.js";
import { h } from "./dom.js";

// provisioner/webhooks.py EVENT_NAMES, in its order (tests/unit/test_dashboard_webhook_form.py
// keeps the two equal)
export const EVENTS = [
  "status", "state", "phase", "outcome", "progress", "usage", "priority", "promote", "preempt",
  "retry", "dependency", "fork", "exec", "cp", "port-forward", "created", "input_required",
  "idle", "active", "paused", "error", "completed", "failed", "cancelled",
];
const CHECKED = new Set(["input_required", "completed", "failed"]); // what most people want

// Which field a refusal is about, by the server's wording (the first that matches).
const FIELDS = [
  ["webhook-url", /webhook URL|webhook host|Webhooks may not call|\burl\b/i],
  ["webhook-events", /event/i],
  ["webhook-secret", /secret/i],
  ["webhook-all", /every user's tasks/i],
  ["webhook-task", /\btask\b/i],
];

function field(id, label, input, help) {
  input.setAttribute("aria-describedby", `${help ? `${id}-help ` : ""}${id}-error`);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input,
    help ? h("p", { class: "help", id: `${id}-help`, text: help }) : null,
    h("p", { class: "error", id: `${id}-error`, role: "alert" }));
}

export function webhookForm(admin, done) {
  const url = h("input", { type: "text", id: "webhook-url", inputmode: "url", autocomplete: "off",
    spellcheck: "false", placeholder: "https://hooks.example.com/dockyard" });
  const secret = h("input", { type: "password", id: "webhook-secret", autocomplete: "new-password" });
  const task = h("input", { type: "text", id: "webhook-task", autocomplete: "off" });
  const boxes = EVENTS.map((name) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "event", value: name, id: `event-${name}`, checked: CHECKED.has(name) }),
    ` ${name}`));
  const events = h("fieldset", { id: "webhook-events", "aria-describedby": "webhook-events-error" },
    h("legend", { text: "Events to send" }), h("div", { class: "checks" }, ...boxes),
    h("p", { class: "error", id: "webhook-events-error", role: "alert" }));
  const all = admin ? h("input", { type: "checkbox", id: "webhook-all" }) : null;
  const formError = h("p", { class: "error", id: "webhook-form-error", role: "alert" });
  const created = h("div", { id: "webhook-created", role: "status" });
  const submit = h("button", { type: "submit", id: "webhook-submit", text: "Add webhook" });
  const form = h("form", { class: "card", id: "webhook-form", novalidate: true },
    h("h2", { text: "Add a webhook" }),
    field("webhook-url", "Receiver URL (http or https)", url,
      "Each event is POSTed there as signed JSON; private and link-local addresses are refused."),
    events,
    field("webhook-secret", "Signing secret (optional)", secret,
      "16 to 256 printable characters without spaces; leave empty and the server makes one, shown once."),
    field("webhook-task", "Only this task (optional: a name or id)", task),
    all ? h("div", { class: "field" }, h("label", { class: "check" }, all, " Every user's tasks (admins)"),
      h("p", { class: "error", id: "webhook-all-error", role: "alert" })) : null,
    formError, submit, created);

  const clear = () => {
    for (const node of form.querySelectorAll(".error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  };
  const show = (err) => {
    if (Array.isArray(err.detail)) { // a malformed request: one item per field
      const item = err.detail[0] || {};
      const loc = (item.loc || []).filter((p) => p !== "body").join(".");
      err = { message: `${loc}: ${item.msg}`, hint: "" };
    }
    const text = err.hint ? `${err.message} (${err.hint})` : err.message;
    const found = FIELDS.find(([id, re]) => re.test(err.message) && document.getElementById(`${id}-error`));
    const slot = found ? document.getElementById(`${found[0]}-error`) : formError;
    slot.textContent = text;
    if (found) {
      const input = document.getElementById(found[0]);
      input.setAttribute("aria-invalid", "true");
      (input.matches("fieldset") ? input.querySelector("input") : input).focus();
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    created.replaceChildren();
    const body = { url: url.value.trim(), events: boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value) };
    if (secret.value !== "") body.secret = secret.value;
    if (task.value.trim()) body.task = task.value.trim();
    if (all && all.checked) body.all = true;
    submit.disabled = true;
    try {
      const hook = await post(`${API}/webhooks`, body);
      secret.value = "";
      url.value = "";
      created.replaceChildren(
        h("p", { text: `Added webhook ${hook.id}: ${hook.events.join(", ")} → ${hook.url}` }),
        hook.secret
          ? h("p", {}, "Signing secret (copy it now: it is not shown again): ",
            h("code", { id: "webhook-secret-shown", text: hook.secret }))
          : h("p", { class: "muted", text: "Signed with the secret you gave (never shown back)." }));
      await done();
    } catch (err) {
      show(err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
