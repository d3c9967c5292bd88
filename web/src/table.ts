// The experiments table: server-side filter/sort/paging, virtualized rows, grouped by
// baseline, best values highlighted, a column picker and row selection for Compare.

import { ApiError, type ErrorBody, type ExperimentsPage } from "./api";
import { allColumnKeys, columnPicker, dataColumns, defaultColumnKeys, FIXED, type Column } from "./columns";
import { expLink, h } from "./dom";
import { href, replaceQuery, type Route } from "./route";
import { RowSource, type Baseline, type TableQuery } from "./rows";
import { VirtualList } from "./virtual";

const ROW_HEIGHT = 26;
const SELECT_WIDTH = 30;
/** More columns than this are not drawn at once (the picker says so). */
const MAX_COLUMNS = 200;

interface TableState extends TableQuery {
  sel: string[];
  cols: string[] | null;
}

function readState(route: Route): TableState {
  const q = route.query;
  return {
    filter: q.get("filter") ?? "",
    sort: q.get("sort") ?? "",
    order: q.get("order") === "desc" ? "desc" : "asc",
    sel: (q.get("sel") ?? "").split(",").filter(Boolean),
    cols: q.has("cols") ? (q.get("cols") ?? "").split(",").filter(Boolean) : null,
  };
}

let renders = 0;

/** Marks for the bench and the tests: the first painted table, then every re-render. */
function painted(): void {
  renders += 1;
  const count = renders;
  // after the browser has painted the frame with these rows
  requestAnimationFrame(() =>
    setTimeout(() => {
      document.body.dataset.tableRenders = String(count);
      if (count === 1) performance.mark("tether:table-painted");
    }, 0),
  );
}

export function filterError(error: ErrorBody): HTMLElement {
  const box = h("div", { class: "filter-error", role: "alert" }, h("div", null, error.message.split("\n")[0]));
  if (error.text !== null && error.caret !== null) {
    box.append(h("pre", { class: "caret" }, `${error.text}\n${" ".repeat(error.caret)}^`));
  }
  return box;
}

export function tableView(root: HTMLElement, route: Route): () => void {
  const state = readState(route);
  const selected = new Set(state.sel);
  const source = new RowSource();
  let page: ExperimentsPage | null = null;
  let columns: Column[] = [];

  const filterInput = h("input", {
    type: "search",
    class: "filter",
    placeholder: "filter: metrics.acc > 0.9 and status == 'success'",
    spellcheck: "false",
  });
  filterInput.value = state.filter;
  const errorSlot = h("div", { class: "error-slot" });
  const totalLabel = h("span", { class: "total muted" });
  const compareButton = h("button", { type: "button", class: "primary" }, "Compare");
  const pickerButton = h("button", { type: "button" }, "Columns");
  const pickerSlot = h("div", { class: "picker-slot" });
  const baselineBar = h("div", { class: "baselines" });
  const runningBar = h("div", { class: "running-bar" });
  const head = h("div", { class: "thead" });
  const body = h("div", { class: "tbody" });
  const scroller = h("div", { class: "table-scroll" }, head, body);
  root.append(
    h("div", { class: "toolbar" }, filterInput, pickerButton, compareButton, totalLabel),
    errorSlot,
    pickerSlot,
    runningBar,
    baselineBar,
    scroller,
  );

  const list = new VirtualList(scroller, body, ROW_HEIGHT, renderRow);
  list.onRange = (first, last) => source.ensure(first, last);
  source.onPage = (first, last) => list.refreshRange(first, last);

  function saveState(): void {
    replaceQuery("/", {
      filter: state.filter,
      sort: state.sort,
      order: state.sort ? state.order : undefined,
      sel: [...selected].join(","),
      cols: state.cols?.join(","),
    });
    compareButton.textContent = `Compare (${selected.size})`;
    compareButton.disabled = selected.size < 2 || selected.size > 100;
  }

  function width(): number {
    return SELECT_WIDTH + columns.reduce((sum, column) => sum + column.width, 0);
  }

  function renderHead(): void {
    const cells = columns.map((column) => {
      const sorted = state.sort === column.key;
      const cell = h(
        "div",
        {
          class: `th${column.sortable ? " sortable" : ""}${sorted ? ` sorted ${state.order}` : ""}`,
          style: `width:${column.width}px`,
          title: column.label,
          "data-key": column.key,
        },
        column.label,
        sorted ? (state.order === "asc" ? " ▲" : " ▼") : "",
      );
      if (column.sortable) cell.addEventListener("click", () => sortBy(column.key));
      return cell;
    });
    head.replaceChildren(h("div", { class: "tr", style: `width:${width()}px` }, h("div", { class: "th sel", style: `width:${SELECT_WIDTH}px` }), cells));
    body.style.width = `${width()}px`;
  }

  function renderHeader(baseline: Baseline): HTMLElement {
    return h(
      "div",
      { class: "tr group", "data-baseline": baseline.sha, style: `width:${width()}px` },
      h(
        "div",
        { class: "td" },
        "baseline ",
        h("b", null, baseline.names.length ? baseline.names.join(", ") : baseline.sha.slice(0, 8)),
        h("span", { class: "muted" }, ` ${baseline.sha.slice(0, 7)} · ${baseline.subject} · ${baseline.count.toLocaleString()}`),
      ),
    );
  }

  function renderRow(index: number): HTMLElement {
    const item = source.item(index);
    if (item?.kind === "header") return renderHeader(item.baseline);
    const row = item?.row;
    if (!row) return h("div", { class: "tr loading", style: `width:${width()}px` }, h("div", { class: "td muted" }, "…"));
    const box = h("input", { type: "checkbox", "aria-label": "select" });
    box.checked = selected.has(row.name);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(row.name);
      else selected.delete(row.name);
      saveState();
    });
    return h(
      "div",
      { class: "tr", "data-name": row.name, style: `width:${width()}px` },
      h("div", { class: "td sel", style: `width:${SELECT_WIDTH}px` }, box),
      columns.map((column) => h("div", { class: `td${column.best?.(row) ? " best" : ""}`, style: `width:${column.width}px` }, column.cell(row))),
    );
  }

  function renderBaselines(current: ExperimentsPage): void {
    baselineBar.replaceChildren(
      ...current.baselines.map((baseline) =>
        h(
          "span",
          {
            class: "chip",
            title: baseline.subject,
            onclick: () => {
              filterInput.value = `baseline == '${baseline.sha}'`;
              applyFilter();
            },
          },
          baseline.names.length ? `${baseline.names.join(", ")} ` : "",
          h("span", { class: "muted" }, `${baseline.sha.slice(0, 7)} · ${baseline.count.toLocaleString()}`),
        ),
      ),
    );
  }

  function renderRunning(current: ExperimentsPage): void {
    const running = current.running ?? [];
    runningBar.replaceChildren(
      ...(running.length ? ["running now: "] : []),
      ...running.flatMap((run, index) => [
        index ? ", " : "",
        h("span", { class: "running-run", "data-where": run.where ?? null }, expLink(run.name), run.where ? h("span", { class: "muted" }, ` (${run.where})`) : null),
      ]),
    );
  }

  function chooseColumns(current: ExperimentsPage): void {
    const keys = (state.cols ?? defaultColumnKeys(current)).slice(0, MAX_COLUMNS);
    columns = [...FIXED, ...dataColumns(keys, current)];
  }

  async function load(): Promise<void> {
    try {
      page = await source.reset(state);
    } catch (error) {
      if (error instanceof ApiError) {
        errorSlot.replaceChildren(filterError(error.body));
        filterInput.classList.add("invalid");
        if (error.body.caret !== null) filterInput.setSelectionRange(error.body.caret, error.body.caret);
      }
      return;
    }
    errorSlot.replaceChildren();
    filterInput.classList.remove("invalid");
    totalLabel.textContent = `${page.total.toLocaleString()} experiments`;
    chooseColumns(page);
    renderHead();
    renderBaselines(page);
    renderRunning(page);
    list.setCount(source.total);
    painted();
  }

  function sortBy(key: string): void {
    if (state.sort === key) state.order = state.order === "asc" ? "desc" : "asc";
    else {
      state.sort = key;
      state.order = "asc";
    }
    saveState();
    void load();
  }

  let typing = 0;
  function applyFilter(): void {
    clearTimeout(typing);
    if (filterInput.value.trim() === state.filter) return;
    state.filter = filterInput.value.trim();
    saveState();
    void load();
  }
  filterInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") applyFilter();
  });
  filterInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = window.setTimeout(applyFilter, 500);
  });

  compareButton.addEventListener("click", () => {
    location.hash = href("/compare", { names: [...selected].join(",") });
  });
  pickerButton.addEventListener("click", () => {
    if (pickerSlot.firstChild || !page) {
      pickerSlot.replaceChildren();
      return;
    }
    const current = page;
    const chosen = state.cols ?? defaultColumnKeys(current);
    pickerSlot.replaceChildren(
      columnPicker(allColumnKeys(current), chosen, (keys) => {
        state.cols = keys;
        saveState();
        chooseColumns(current);
        renderHead();
        list.refresh();
      }),
    );
  });

  saveState();
  void load();
  return () => {
    clearTimeout(typing);
    list.destroy();
  };
}

