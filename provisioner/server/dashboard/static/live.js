// The live view of tasks: one server-sent event stream (/api/dockyard/v1/stream) of the tasks the
// caller may see; views subscribe to its changes. A desktop notification (and a screen
// reader announcement) when a task needs input or finishes.

import { API } from "./api.js";
import { announce } from "./dom.js";

// every visible task by id, as the stream last told it
export const tasks = new Map();
const listeners = new Set();

export function onTasks(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function notifyChange(previous, task) {
  const was = previous ? `${previous.status}/${previous.state}` : "";
  let what = null;
  if (task.status === "active" && task.state === "input_required"
      && was !== "active/input_required") what = `${task.name} needs your input`;
  else if (["completed", "failed"].includes(task.status) && previous
      && previous.status !== task.status) what = `${task.name} ${task.status}`;
  if (!what) return;
  announce(what);
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("Dockyard", { body: what, tag: `${task.id}-${task.status}-${task.state}` });
  }
}

export function connect() {
  const state = document.getElementById("stream-state");
  const source = new EventSource(`${API}/stream`);
  source.addEventListener("open", () => { state.textContent = "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
  source.addEventListener("snapshot", (event) => {
    const list = JSON.parse(event.data);
    const seen = new Set();
    for (const task of list) {
      notifyChange(tasks.get(task.id), task);
      tasks.set(task.id, task);
      seen.add(task.id);
    }
    for (const id of [...tasks.keys()]) if (!seen.has(id)) tasks.delete(id);
    for (const listener of listeners) listener(null);
  });
  source.addEventListener("task", (event) => {
    const task = JSON.parse(event.data);
    notifyChange(tasks.get(task.id), task);
    tasks.set(task.id, task);
    for (const listener of listeners) listener(task);
  });
  source.addEventListener("removed", (event) => {
    const { id } = JSON.parse(event.data);
    tasks.delete(id);
    for (const listener of listeners) listener({ id, removed: true });
  });
}

