// One task: its status, live logs (with the --screen lines on demand), the send box
// (each prompt queued, then taken), its question and answer, pause and resume, the
// start-up phases, outcome and cost, and its history.

import { API, enc, get, post } from "./api.js";
import { announce, badge, cost, detailText, h, time } from "./dom.js";
import { onTasks, tasks } from "./live.js";
import { LogView } from "./logview.js";
import { diffView } from "./diff.js";

const PAGE = 100000; // log entries per request (the API's most)
const WAIT = 15; // seconds a logs long-poll is held (a server waits for it on shutdown)
const PENDING = new Set(["queued", "delivered"]);

function section(title, id, ...children) {
  return h("section", { "aria-labelledby": id }, h("h2", { id, text: title }), ...children);
}

function errorLine(id) {
  return h("p", { class: "error", id, role: "alert" });
}

export function showTask(main, ref) {
  let task = tasks.get(ref) || null;
  let closed = false;
  let started = false;
  const title = h("h1", { id: "task-name", text: ref });
  const status = h("div", { class: "task-status", id: "task-status" });
  const actionError = errorLine("action-error");
  const pause = h("button", { type: "button", id: "pause", text: "Pause" });
  const resume = h("button", { type: "button", id: "resume", text: "Resume" });
  const retry = h("button", { type: "button", id: "retry", text: "Retry" });

  const question = h("p", { id: "question-text" });
  const answer = h("textarea", { id: "answer", rows: 2 });
  const answerError = errorLine("answer-error");
  const questionBox = h("section", { id: "question", "aria-labelledby": "question-h", hidden: true },
    h("h2", { id: "question-h", text: "The agent asks" }), question,
    h("form", { onsubmit: (e) => { e.preventDefault(); sendText(answer, answerError); } },
      h("label", { for: "answer", text: "Your answer" }), answer, answerError,
      h("button", { type: "submit", text: "Answer" })));

  const input = h("textarea", { id: "send-input", rows: 3, "aria-describedby": "send-error" });
  const sendError = errorLine("send-error");
  const prompts = h("ol", { id: "prompts", class: "prompts" });

  const screen = h("input", { type: "checkbox", id: "screen" });
  const logBox = h("div", { id: "logs", "aria-label": "Task logs" });
  const phases = h("tbody");
  const outcome = h("dl", { id: "outcome", class: "outcome" });
  const events = h("tbody");
  // the template's declared apps: each a link to its preview (a new tab, sandboxed and
  // under a grant of its own: the app never runs with this page's origin)
  const apps = h("ul", { id: "apps", class: "apps" });
  const appsBox = section("Apps", "apps-h", apps);
  appsBox.hidden = true;

  main.append(
    h("p", {}, h("a", { href: "#/", text: "← Board" })),
    title, status,
    h("div", { class: "actions" }, pause, resume, retry), actionError,
    questionBox,
    appsBox,
    section("Send", "send-h",
      h("form", { onsubmit: (e) => { e.preventDefault(); sendText(input, sendError); } },
        h("label", { for: "send-input", text: "Follow-up prompt (queued while the agent works)" }),
        input, sendError, h("button", { type: "submit", id: "send", text: "Send" })),
      prompts),
    section("Logs", "logs-h",
      h("p", {}, screen, h("label", { for: "screen", text: " Show the agent's screen lines (--screen)" })),
      logBox),
    section("Work (diff)", "diff-h", diffView(() => task && task.id)),
    section("Phases", "phases-h", h("table", { id: "phases" },
      h("thead", {}, h("tr", {}, ...["Phase", "Started", "Took"].map((t) => h("th", { scope: "col", text: t })))),
      phases)),
    section("Outcome and cost", "outcome-h", outcome),
    section("History", "events-h", h("div", { class: "table-wrap" }, h("table", { id: "events" },
      h("thead", {}, h("tr", {}, ...["Time", "What", "Change", "Who", "Why"].map((t) => h("th", { scope: "col", text: t })))),
      events))),
  );

  const view = new LogView(logBox);
  const entries = [];
  const shownEntry = (e) => screen.checked || e.source !== "screen";
  const asLine = (e) => ({ text: e.content ?? "", kind: e.source === "screen" ? "screen" : e.type });
  screen.addEventListener("change", () => view.replace(entries.filter(shownEntry).map(asLine)));

  const promptItems = new Map();
  function showPrompt(p) {
    let item = promptItems.get(p.id);
    if (!item) {
      item = h("li", { "data-prompt": p.id });
      promptItems.set(p.id, item);
      prompts.prepend(item);
    }
    const state = p.state;
    item.dataset.state = state;
    item.replaceChildren(h("span", { class: `badge pr-${state}`, text: state }), " ",
      h("span", { class: "prompt-text", text: p.content ?? "" }),
      p.reason ? h("span", { class: "error", text: ` ${p.reason}` }) : null);
  }
  async function followPrompt(id) {
    for (;;) {
      if (closed) return;
      let p;
      try {
        p = await get(`${API}/tasks/${enc(task ? task.id : ref)}/prompts/${enc(id)}?wait=15`);
      } catch { return; }
      showPrompt(p);
      if (!PENDING.has(p.state)) { announce(`prompt ${p.state}`); return; }
      if (task && ["paused", "error", "failed", "cancelled"].includes(task.status)) return;
    }
  }

  async function sendText(box, error) {
    error.textContent = "";
    const text = box.value;
    if (!text.trim()) { error.textContent = "Write something to send first"; return; }
    try {
      const sent = await post(`${API}/tasks/${enc(task.id)}/send`, { input: text });
      box.value = "";
      showPrompt({ id: sent.prompt_id, content: text, state: sent.state });
      followPrompt(sent.prompt_id);
    } catch (err) {
      error.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    }
  }

  async function act(what) {
    actionError.textContent = "";
    try {
      render(await post(`${API}/tasks/${enc(task.id)}/${what}`));
    } catch (err) {
      actionError.textContent = err.hint ? `${err.message}: ${err.hint}` : err.message;
    }
  }
  pause.addEventListener("click", () => act("pause"));
  resume.addEventListener("click", () => act("resume"));
  retry.addEventListener("click", () => act("retry"));

  function renderOutcome(t) {
    const pairs = [["Outcome", t.outcome], ["Error class", t.error_class], ["Error code", t.error_code],
      ["Output", t.output], ["Progress", t.progress], ["Model", t.model],
      ["Tokens in", t.tokens_in], ["Tokens out", t.tokens_out], ["Cost", cost(t) || "$0"],
      ["Template", `${t.template}${t.preset ? ` / ${t.preset}` : ""}`], ["Owner", t.owner],
      ["Priority", t.priority], ["Attempt", t.attempt]];
    outcome.replaceChildren(...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
  }

  let eventsTimer = null;
  async function loadEvents() {
    try {
      const { events: list } = await get(`${API}/tasks/${enc(task.id)}/events`);
      events.replaceChildren(...list.slice().reverse().map((e) => h("tr", {},
        h("td", { text: time(e.time) }), h("td", { text: e.kind }),
        h("td", { text: e.from_value || e.to_value ? `${e.from_value ?? ""} → ${e.to_value ?? ""}` : "" }),
        h("td", { text: e.actor }), h("td", { text: e.reason || "" }))));
    } catch { /* shown again at the next change */ }
  }

  function render(t) {
    const first = !started;
    task = t;
    title.textContent = t.name;
    document.title = `${t.name} · Dockyard`;
    status.replaceChildren(badge(t), " ", h("span", { class: "detail", id: "task-detail", text: detailText(t) }));
    const st = t.status;
    pause.disabled = !["active", "initializing", "pending"].includes(st);
    resume.disabled = !["paused", "error"].includes(st);
    retry.hidden = !["error", "failed"].includes(st);
    const asking = st === "active" && t.state === "input_required";
    questionBox.hidden = !asking;
    question.textContent = t.question || "";
    phases.replaceChildren(...(t.phases || []).map((p) => h("tr", {},
      h("td", { text: p.phase }), h("td", { text: time(p.started_at) }),
      h("td", { text: p.duration_s === null || p.duration_s === undefined ? "…" : `${p.duration_s} s` }))));
    renderOutcome(t);
    clearTimeout(eventsTimer);
    eventsTimer = setTimeout(loadEvents, first ? 0 : 300);
    start();
  }

  async function readLogs() {
    let after = 0;
    let wait = 0;
    while (!closed) {
      let page;
      try {
        page = await get(`${API}/tasks/${enc(task.id)}/logs?after=${after}&limit=${PAGE}&wait=${wait}`);
      } catch {
        if (closed) return;
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      if (closed) return;
      const fresh = page.logs;
      for (const e of fresh) entries.push(e);
      view.append(fresh.filter(shownEntry).map(asLine));
      after = page.last_id;
      wait = fresh.length >= PAGE ? 0 : WAIT;
    }
  }

  async function loadApps() {
    try {
      const { apps: list } = await get(`${API}/tasks/${enc(task.id)}/apps`);
      apps.replaceChildren(...list.map((a) => h("li", {},
        h("a", { href: a.path, target: "_blank", rel: "noopener noreferrer", class: "app-link",
          text: `${a.name} (port ${a.port})` }),
        a.up === null || a.up === undefined ? "" : h("span", { class: "detail", text: a.up ? " up" : " not answering" }))));
      appsBox.hidden = list.length === 0;
    } catch { /* none shown */ }
  }

  async function start() {
    if (started) return;
    started = true;
    readLogs();
    loadApps();
    try {
      const { prompts: list } = await get(`${API}/tasks/${enc(task.id)}/prompts`);
      for (const p of list) {
        showPrompt(p);
        if (PENDING.has(p.state)) followPrompt(p.id);
      }
    } catch { /* the task is gone */ }
  }

  if (task) render(task);
  else get(`${API}/tasks/${enc(ref)}`).then(render).catch((err) => {
    title.textContent = "Task not found";
    actionError.textContent = err.message;
  });

  const stop = onTasks((changed) => {
    if (changed === null) {
      const now = task && tasks.get(task.id);
      if (now) render(now);
    } else if (task && changed.id === task.id && !changed.removed) render(changed);
  });
  return () => { closed = true; stop(); clearTimeout(eventsTimer); };
}
