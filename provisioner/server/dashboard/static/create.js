// Create a task from a template's preset: typed inputs from the template's parameter
// schema (choices, numbers, booleans, secrets masked), the prompt, priority, tags and
// dependencies. The server checks everything; its error is shown next to its field.

import { API, enc, get, post } from "./api.js";
import { h } from "./dom.js";

function control(param, value) {
  const id = `param-${param.name}`;
  const rule = param.validation || {};
  let input;
  if (param.type === "choice") {
    input = h("select", { id, name: param.name },
      ...(param.options || []).map((o) => h("option", { value: String(o), text: String(o) })));
    input.value = String(value ?? "");
  } else if (param.type === "bool") {
    input = h("input", { id, name: param.name, type: "checkbox" });
    input.checked = value === true || String(value).toLowerCase() === "true";
  } else if (param.type === "number" || param.type === "integer") {
    input = h("input", { id, name: param.name, type: "number", inputmode: "decimal",
      step: param.type === "integer" ? "1" : "any", min: rule.min ?? null, max: rule.max ?? null });
    input.value = value === null || value === undefined ? "" : String(value);
  } else {
    input = h("input", { id, name: param.name, type: param.secret ? "password" : "text",
      autocomplete: "off", spellcheck: "false" });
    input.value = param.secret ? "" : (Array.isArray(value) ? value.join(", ") : (value ?? ""));
  }
  input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  if (param.required) input.required = true;
  const help = [param.description, rule.message, param.secret ? "secret: never shown or stored" : null]
    .filter(Boolean).join(" · ");
  return {
    input,
    node: h("div", { class: "field" },
      param.type === "bool"
        ? h("p", {}, input, h("label", { for: id, text: ` ${param.name}` }))
        : [h("label", { for: id, text: `${param.name}${param.required ? " (required)" : ""}` }), input],
      h("p", { class: "help", id: `${id}-help`, text: help }),
      h("p", { class: "error", id: `${id}-error`, role: "alert" })),
  };
}

function readValue(param, input) {
  if (param.type === "bool") return input.checked;
  if (param.type === "number" || param.type === "integer") {
    return input.value === "" ? "" : Number.isNaN(Number(input.value)) ? input.value : Number(input.value);
  }
  return input.value;
}

export function showCreate(main) {
  const templateSel = h("select", { id: "template", name: "template" });
  const presetSel = h("select", { id: "preset", name: "preset" });
  const params = h("fieldset", { id: "parameters" }, h("legend", { text: "Parameters" }));
  const prompt = h("textarea", { id: "prompt", rows: 4, required: true,
    "aria-describedby": "prompt-error" });
  const name = h("input", { id: "name", type: "text", autocomplete: "off",
    "aria-describedby": "name-help name-error" });
  const priority = h("select", { id: "priority" },
    ...["low", "normal", "high"].map((p) => h("option", { value: p, text: p })));
  priority.value = "normal";
  const tags = h("input", { id: "tags", type: "text", autocomplete: "off",
    "aria-describedby": "tags-help tags-error" });
  const depends = h("input", { id: "depends_on", type: "text", autocomplete: "off",
    "aria-describedby": "depends_on-help depends_on-error" });
  const formError = h("p", { class: "error", id: "form-error", role: "alert" });
  const err = (id) => h("p", { class: "error", id: `${id}-error`, role: "alert" });
  const form = h("form", { id: "create", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "template", text: "Template" }), templateSel,
      h("p", { class: "help", id: "template-help" }), err("template")),
    h("div", { class: "field" }, h("label", { for: "preset", text: "Preset" }), presetSel,
      h("p", { class: "help", id: "preset-help" }), err("preset")),
    params,
    h("div", { class: "field" }, h("label", { for: "prompt", text: "Prompt" }), prompt, err("prompt")),
    h("div", { class: "field" }, h("label", { for: "name", text: "Name (optional)" }), name,
      h("p", { class: "help", id: "name-help", text: "derived from the prompt if left empty" }), err("name")),
    h("div", { class: "field" }, h("label", { for: "priority", text: "Priority" }), priority, err("priority")),
    h("div", { class: "field" }, h("label", { for: "tags", text: "Tags" }), tags,
      h("p", { class: "help", id: "tags-help", text: "comma-separated" }), err("tags")),
    h("div", { class: "field" }, h("label", { for: "depends_on", text: "Depends on" }), depends,
      h("p", { class: "help", id: "depends_on-help", text: "task names, comma-separated: it starts once they completed" }),
      err("depends_on")),
    formError,
    h("button", { type: "submit", id: "create-submit", text: "Create task" }));
  main.append(h("h1", { text: "New task" }), form);

  let templates = [];
  let presets = [];
  let controls = new Map();

  function currentTemplate() { return templates.find((t) => t.name === templateSel.value); }

  function drawParams() {
    const tpl = currentTemplate();
    const preset = presets.find((p) => p.name === presetSel.value);
    const values = (preset && preset.parameters) || {};
    controls = new Map();
    params.replaceChildren(h("legend", { text: "Parameters" }));
    for (const param of (tpl ? tpl.parameters : [])) {
      const value = param.name in values ? values[param.name] : param.default;
      const c = control(param, value);
      controls.set(param.name, { param, input: c.input, initial: readValue(param, c.input) });
      params.append(c.node);
    }
    document.getElementById("preset-help").textContent = preset ? (preset.description || "") : "";
  }

  async function loadPresets() {
    const tpl = currentTemplate();
    document.getElementById("template-help").textContent = tpl ? (tpl.description || "") : "";
    presets = tpl ? (await get(`${API}/templates/${enc(tpl.name)}/presets`)).presets : [];
    presetSel.replaceChildren(...presets.map((p) => h("option", { value: p.name, text: p.name })));
    const preferred = presets.find((p) => p.default) || presets[0];
    if (preferred) presetSel.value = preferred.name;
    drawParams();
  }

  templateSel.addEventListener("change", loadPresets);
  presetSel.addEventListener("change", drawParams);

  function clearErrors() {
    for (const node of form.querySelectorAll(".error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  function showError(err) {
    const detail = err.detail;
    const say = (id, text) => {
      const slot = document.getElementById(`${id}-error`);
      const field = document.getElementById(id);
      if (!slot) return false;
      slot.textContent = text;
      if (field) field.setAttribute("aria-invalid", "true");
      if (field) field.focus();
      return true;
    };
    if (Array.isArray(detail)) { // a malformed request: one item per field
      for (const item of detail) {
        const loc = (item.loc || []).filter((p) => p !== "body");
        const key = loc[0] === "parameters" ? `param-${loc[1]}` : String(loc[0]);
        if (!say(key, item.msg)) formError.textContent = `${loc.join(".")}: ${item.msg}`;
      }
      return;
    }
    const text = err.hint ? `${err.message} (${err.hint})` : err.message;
    const param = /^Parameter ([A-Za-z0-9_-]+)/.exec(err.message);
    if (param && say(`param-${param[1]}`, text)) return;
    for (const key of ["prompt", "name", "priority", "tags", "depends_on", "preset", "template"]) {
      if (new RegExp(`\\b${key.replace("_", "[ _-]")}`, "i").test(err.message) && say(key, text)) return;
    }
    formError.textContent = text;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    if (!prompt.value.trim()) {
      document.getElementById("prompt-error").textContent = "Write the task's prompt";
      prompt.setAttribute("aria-invalid", "true");
      prompt.focus();
      return;
    }
    const parameters = {};
    for (const [key, { param, input, initial }] of controls) {
      const value = readValue(param, input);
      if (param.secret ? value !== "" : value !== initial) parameters[key] = value;
    }
    const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
    const body = { template: templateSel.value, preset: presetSel.value || null, prompt: prompt.value,
      parameters, priority: priority.value, tags: list(tags.value), depends_on: list(depends.value) };
    if (name.value.trim()) body.name = name.value.trim();
    const submit = document.getElementById("create-submit");
    submit.disabled = true;
    try {
      const task = await post(`${API}/tasks`, body);
      location.hash = `#/task/${encodeURIComponent(task.id)}`;
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });

  (async () => {
    templates = (await get(`${API}/templates`)).templates;
    templateSel.replaceChildren(...templates.map((t) => h("option", { value: t.name, text: t.name })));
    const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("template");
    if (wanted && templates.some((t) => t.name === wanted)) templateSel.value = wanted;
    await loadPresets();
  })().catch((err) => { formError.textContent = err.message; });
  return () => {};
}
