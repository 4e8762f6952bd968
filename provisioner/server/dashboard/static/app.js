// The dashboard: one page, views by the URL's fragment, the board and task pages kept
// live by one server-sent event stream of task changes (/api/dockyard/v1/stream).

import { API, api, get } from "./api.js";
import { showSchedules, showTriggers, showWebhooks } from "./automation.js";
import { showBoard } from "./board.js";
import { showCapacity, showTemplates } from "./catalog.js";
import { showCreate } from "./create.js";
import { connect } from "./live.js";
import { showTask } from "./task.js";

let leave = null;

function route() {
  if (leave) leave();
  leave = null;
  const main = document.getElementById("main");
  main.replaceChildren();
  const hash = location.hash.replace(/^#\/?/, "").split("?")[0];
  const [view, ...rest] = hash.split("/");
  if (view === "task" && rest[0]) leave = showTask(main, decodeURIComponent(rest[0]));
  else if (view === "new") leave = showCreate(main);
  else if (view === "templates") leave = showTemplates(main);
  else if (view === "capacity") leave = showCapacity(main);
  else if (view === "schedules") leave = showSchedules(main);
  else if (view === "triggers") leave = showTriggers(main);
  else if (view === "webhooks") leave = showWebhooks(main);
  else leave = showBoard(main);
  for (const link of document.querySelectorAll("nav a")) {
    const here = link.getAttribute("href") === `#/${view || ""}`;
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function start() {
  const me = await get(`${API}/me`);
  document.getElementById("who").textContent = `${me.user} (${me.role})`;
  // what the pages offer (admins: push, activate, everyone's); the API decides anyway
  document.body.dataset.role = me.role;
  const notify = document.getElementById("notify");
  if (!("Notification" in window) || Notification.permission !== "default") notify.hidden = true;
  notify.addEventListener("click", async () => {
    await Notification.requestPermission();
    notify.hidden = Notification.permission !== "default";
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("POST", "/auth/logout", {});
    location.assign("/login");
  });
  connect();
  window.addEventListener("hashchange", route);
  route();
}

start();
