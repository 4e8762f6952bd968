// A virtualised log view: only the rows in sight are in the page, so a 200,000-line
// transcript scrolls like a short one. Lines are shown as text (never parsed as HTML);
// ANSI colour codes (SGR) become styled spans, other escape sequences are dropped.

const ROW = 18; // px, the CSS line height of .log-row
const OVERSCAN = 20;
const PALETTE = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b./g;

function applySgr(style, codes) {
  const list = codes === "" ? [0] : codes.split(";").map((c) => Number(c) || 0);
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === 0) { style.fg = null; style.bg = null; style.bold = false; style.underline = false; }
    else if (c === 1) style.bold = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) style.bold = false;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = `ansi-${PALETTE[c - 30]}`;
    else if (c >= 90 && c <= 97) style.fg = `ansi-bright-${PALETTE[c - 90]}`;
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = `ansi-bg-${PALETTE[c - 40]}`;
    else if (c >= 100 && c <= 107) style.bg = `ansi-bg-${PALETTE[c - 100]}`;
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && list[i + 1] === 5) i += 2; // 256 colours: kept plain
    else if ((c === 38 || c === 48) && list[i + 1] === 2) i += 4; // true colour: kept plain
  }
}

// The line as DOM nodes: text nodes in spans, so markup in a log line stays text.
export function renderAnsi(text, into) {
  const style = { fg: null, bg: null, bold: false, underline: false };
  let last = 0;
  const emit = (chunk) => {
    if (!chunk) return;
    if (!style.fg && !style.bg && !style.bold && !style.underline) {
      into.appendChild(document.createTextNode(chunk));
      return;
    }
    const span = document.createElement("span");
    span.className = [style.fg, style.bg, style.bold && "ansi-bold",
      style.underline && "ansi-underline"].filter(Boolean).join(" ");
    span.textContent = chunk;
    into.appendChild(span);
  };
  for (const m of text.matchAll(ESCAPES)) {
    emit(text.slice(last, m.index));
    if (m[2] === "m") applySgr(style, m[1]);
    last = m.index + m[0].length;
  }
  emit(text.slice(last));
}

export class LogView {
  constructor(element) {
    this.el = element;
    this.el.classList.add("log");
    this.el.setAttribute("role", "log");
    this.el.tabIndex = 0;
    this.spacer = document.createElement("div");
    this.spacer.className = "log-spacer";
    this.rows = document.createElement("div");
    this.rows.className = "log-rows";
    this.el.append(this.spacer, this.rows);
    this.lines = [];
    this.follow = true;
    this.scheduled = false;
    this.el.addEventListener("scroll", () => {
      const bottom = this.el.scrollHeight - this.el.clientHeight - this.el.scrollTop;
      this.follow = bottom < ROW * 2;
      this.schedule();
    }, { passive: true });
  }

  // lines: [{text, kind}] where kind is "input", "output", "system" or "screen"
  append(lines) {
    if (!lines.length) return;
    for (const line of lines) this.lines.push(line);
    this.schedule();
  }

  replace(lines) {
    this.lines = lines.slice();
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.draw(); });
  }

  draw() {
    const total = this.lines.length;
    this.spacer.style.height = `${total * ROW}px`;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW) - OVERSCAN);
    const count = Math.ceil(this.el.clientHeight / ROW) + 2 * OVERSCAN;
    const end = Math.min(total, first + count);
    const rows = document.createDocumentFragment();
    for (let i = first; i < end; i++) {
      const line = this.lines[i];
      const row = document.createElement("div");
      row.className = `log-row log-${line.kind}`;
      row.style.top = `${i * ROW}px`;
      if (line.kind === "input") row.appendChild(document.createTextNode("› "));
      renderAnsi(line.text, row);
      rows.appendChild(row);
    }
    this.rows.replaceChildren(rows);
    this.el.dataset.lines = String(total);
  }
}
