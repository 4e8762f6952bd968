// Building the page with DOM calls only: every value is set as text or an attribute,
// never as HTML, so a task name, prompt or log line holding markup shows as written.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function announce(text) {
  const region = document.getElementById("announce");
  if (region) region.textContent = text;
}

// What a task is doing, truly: the status with its state, phase or queue message.
export function statusText(task) {
  const s = task.status;
  if (s === "active") return task.state ? `${task.state}` : "active";
  if (s === "initializing") return task.phase ? `initializing: ${task.phase}` : "initializing";
  if (s === "completed" || s === "failed" || s === "cancelled") return s;
  return s;
}

export function statusKey(task) {
  return task.status === "active" && task.state ? task.state : task.status;
}

export function detailText(task) {
  if (task.status === "active" && task.state === "input_required") return task.question || "";
  return task.message || "";
}

export function badge(task) {
  return h("span", { class: `badge st-${statusKey(task)}`, "data-status": statusKey(task) },
    statusText(task));
}

export function cost(task) {
  const usd = Number(task.cost_usd || 0);
  return usd ? `$${usd.toFixed(4)}` : "";
}

export function time(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}
