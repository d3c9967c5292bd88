// The table's columns: the fixed ones of `tether show`, then params and metrics; and the
// column picker, a searchable virtualized list so thousands of columns never freeze the page.

import type { ExperimentRow, ExperimentsPage } from "./api";
import { expLink, formatCreated, formatDuration, h, show, statusLabel } from "./dom";
import { VirtualList } from "./virtual";

export interface Column {
  key: string; // also the sort key of the API: name, created, param:lr, metric:acc
  label: string;
  width: number;
  sortable: boolean;
  cell: (row: ExperimentRow) => Node | string;
  best?: (row: ExperimentRow) => boolean;
}

/** Columns shown when the URL names none: at most this many params and metrics. */
const DEFAULT_LIMIT = 40;

export const FIXED: Column[] = [
  { key: "name", label: "name", width: 220, sortable: true, cell: (row) => expLink(row.name) },
  { key: "created", label: "created", width: 140, sortable: true, cell: (row) => formatCreated(row.created) },
  {
    key: "status",
    label: "status",
    width: 80,
    sortable: true,
    cell: (row) => statusLabel(row.status),
  },
  { key: "duration", label: "duration", width: 80, sortable: true, cell: (row) => formatDuration(row.duration) },
];

export function allColumnKeys(page: ExperimentsPage): string[] {
  return [
    ...page.columns.all_params.map((name) => `param:${name}`),
    ...page.columns.metrics.map((metric) => `metric:${metric.name}`),
  ];
}

export function defaultColumnKeys(page: ExperimentsPage): string[] {
  return [
    ...page.columns.params.map((name) => `param:${name}`),
    ...page.columns.metrics.map((metric) => `metric:${metric.name}`),
  ].slice(0, DEFAULT_LIMIT);
}

export function dataColumns(keys: string[], page: ExperimentsPage): Column[] {
  const directions = new Map(page.columns.metrics.map((m) => [m.name, m.direction]));
  return keys.map((key) => {
    const colon = key.indexOf(":");
    const kind = key.slice(0, colon);
    const name = key.slice(colon + 1);
    if (kind === "metric") {
      const direction = directions.get(name);
      const arrow = direction === "max" ? " ↑" : direction === "min" ? " ↓" : "";
      const best = page.best[name];
      return {
        key,
        label: `${name}${arrow}`,
        width: 110,
        sortable: true,
        cell: (row) => show(row.metrics[name]),
        best: (row) => best !== undefined && best.names.includes(row.name),
      };
    }
    return { key, label: name, width: 110, sortable: true, cell: (row) => show(row.params[name]) };
  });
}

const PICKER_ROW = 24;

/** A panel listing every column with a search box; `chosen` is edited in place. */
export function columnPicker(all: string[], chosen: string[], changed: (keys: string[]) => void): HTMLElement {
  const selected = new Set(chosen);
  let shown = all;
  const body = h("div", { class: "picker-body" });
  const scroller = h("div", { class: "picker-list" }, body);
  const count = h("span", { class: "muted" });
  const list = new VirtualList(scroller, body, PICKER_ROW, (index) => {
    const key = shown[index];
    const box = h("input", { type: "checkbox", "data-key": key });
    box.checked = selected.has(key);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(key);
      else selected.delete(key);
      changed(all.filter((k) => selected.has(k)));
      count.textContent = `${selected.size} of ${all.length} shown`;
    });
    return h("label", { class: "picker-row" }, box, key);
  });
  const search = h("input", { type: "search", placeholder: "search columns", class: "picker-search" });
  search.addEventListener("input", () => {
    const needle = search.value.toLowerCase();
    shown = needle ? all.filter((key) => key.toLowerCase().includes(needle)) : all;
    list.setCount(shown.length);
  });
  count.textContent = `${selected.size} of ${all.length} shown`;
  const panel = h(
    "div",
    { class: "picker" },
    h("div", { class: "picker-head" }, search, count),
    scroller,
    h(
      "div",
      { class: "picker-foot" },
      h("button", { type: "button", onclick: () => reset([]) }, "None"),
      h("button", { type: "button", onclick: () => reset(shown) }, "All matching"),
    ),
  );
  function reset(keys: string[]): void {
    selected.clear();
    for (const key of keys) selected.add(key);
    changed(all.filter((k) => selected.has(k)));
    count.textContent = `${selected.size} of ${all.length} shown`;
    list.refresh();
  }
  requestAnimationFrame(() => list.setCount(shown.length));
  return panel;
}
