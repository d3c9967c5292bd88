// Building DOM nodes. Every string becomes a text node: record data (names, params, logs,
// diffs) is untrusted and never reaches innerHTML.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el: Element): void {
  el.replaceChildren();
}

/** A plain-text rendering of any JSON value for a table cell. */
export function show(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(seconds % 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

/** An ISO 8601 string or seconds since the epoch, as `YYYY-MM-DD HH:MM` (UTC), with `:SS` if `seconds`. */
export function formatCreated(when: string | number | null | undefined, seconds = false): string {
  if (when === null || when === undefined || when === "") return "";
  const iso = typeof when === "number" ? new Date(when * 1000).toISOString() : when;
  return iso.replace("T", " ").slice(0, seconds ? 19 : 16);
}

/** Tags (or queue names) as small labels; `empty` when there are none. */
export function tagList(tags: string[] | undefined, empty = ""): HTMLElement {
  if (!tags?.length) return h("span", { class: "muted" }, empty);
  return h("span", { class: "tags" }, tags.map((tag) => h("span", { class: "tag" }, tag)));
}

/** A two-column table of key → value, for params, metrics and the environment. */
export function keyValueTable(entries: [string, unknown][], empty = "none"): HTMLElement {
  if (entries.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: "kv" },
    h("tbody", null, entries.map(([key, value]) => h("tr", null, h("th", null, key), h("td", null, show(value))))),
  );
}

/** A table of rows under a header line. */
export function grid(headings: (string | Node)[], rows: Node[]): HTMLElement {
  return h("table", { class: "grid" }, h("thead", null, h("tr", null, headings.map((title) => h("th", null, title)))), h("tbody", null, rows));
}

export function section(title: string, ...body: (Child | Child[])[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", null, title), ...body);
}

/** A status word, colored by its class. */
export function statusLabel(status: string): HTMLElement {
  return h("span", { class: `status s-${status.replace(/[^a-z-]/g, "")}` }, status);
}

export function expLink(name: string): HTMLAnchorElement {
  return h("a", { href: `#/exp/${encodeURIComponent(name)}` }, name);
}
