// Compare 2–100 experiments: differing params, metrics with better/worse marks, the gate
// verdict, and overlaid step-metric plots (log/linear, smoothing, x = step or wall time).

import { getJSON, type Comparison, type Steps } from "./api";
import { StepChart, type ChartSettings } from "./chart";
import { expLink, grid, h, section, show } from "./dom";
import { replaceQuery, type Route } from "./route";

const MARK = { better: "▲ better", worse: "▼ worse", same: "= same" } as const;

function paramsTable(cmp: Comparison): HTMLElement {
  const params = Object.entries(cmp.params_differing);
  if (params.length === 0) return h("p", { class: "muted" }, "no param differs");
  return grid(
    ["param", ...cmp.names.map(expLink)],
    params.map(([param, values]) => h("tr", null, h("th", null, param), cmp.names.map((name) => h("td", null, show(values[name]))))),
  );
}

function metricsTable(cmp: Comparison): HTMLElement {
  const metrics = Object.entries(cmp.metrics);
  if (metrics.length === 0) return h("p", { class: "muted" }, "no metrics");
  return grid(
    ["metric", ...cmp.names.map(expLink)],
    metrics.map(([metric, info]) =>
      h(
        "tr",
        null,
        h("th", null, metric, info.direction ? ` (${info.direction})` : ""),
        cmp.names.map((name) => {
          const mark = info.marks[name];
          return h(
            "td",
            { class: `${mark ?? ""}${info.best === name ? " best" : ""}` },
            show(info.values[name]),
            mark ? h("span", { class: "mark" }, ` ${MARK[mark]}`) : "",
          );
        }),
      ),
    ),
  );
}

function gateBlock(gate: Comparison["gate"]): HTMLElement {
  if (!gate) return h("p", { class: "muted" }, "no gate verdict (no main build to compare against)");
  const verdicts = Object.entries(gate.verdicts ?? {});
  return h(
    "div",
    null,
    h("p", { class: "muted" }, `against ${gate.rev ?? "the main build"}`),
    h(
      "table",
      { class: "grid" },
      h(
        "tbody",
        null,
        verdicts.map(([name, verdict]) =>
          h("tr", null, h("th", null, expLink(name)), h("td", { class: `verdict v-${verdict.replace(/[^a-z-]/g, "")}` }, verdict)),
        ),
      ),
    ),
    gate.results?.length ? h("details", null, h("summary", null, "details"), h("pre", { class: "mono" }, JSON.stringify(gate.results, null, 2))) : null,
  );
}

export function compareView(root: HTMLElement, route: Route): () => void {
  const names = (route.query.get("names") ?? "").split(",").filter(Boolean);
  const settings: ChartSettings = {
    log: route.query.get("log") === "1",
    smoothing: Number(route.query.get("smooth") ?? 0) || 0,
    time: route.query.get("x") === "time",
  };
  const charts = new Map<string, StepChart>();
  let stopped = false;
  if (names.length < 2 || names.length > 100) {
    root.append(h("p", { class: "muted" }, "Select 2 to 100 experiments in the table, then press Compare."));
    return () => {};
  }

  const logBox = h("input", { type: "checkbox", id: "log-y" });
  logBox.checked = settings.log;
  const timeBox = h("input", { type: "checkbox", id: "x-time" });
  timeBox.checked = settings.time;
  const smoothing = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, id: "smoothing" });
  smoothing.value = String(settings.smoothing);
  const plots = h("div", { class: "plots" });
  const controls = h(
    "div",
    { class: "toolbar" },
    h("label", null, logBox, " log y"),
    h("label", null, timeBox, " x = wall time"),
    h("label", null, "smoothing ", smoothing),
  );

  function save(): void {
    replaceQuery("/compare", {
      names: names.join(","),
      log: settings.log ? "1" : undefined,
      smooth: settings.smoothing ? String(settings.smoothing) : undefined,
      x: settings.time ? "time" : undefined,
    });
  }

  async function loadSteps(metric: string): Promise<void> {
    let chart = charts.get(metric);
    if (!chart) {
      const host = h("div", { class: "chart", "data-metric": metric });
      plots.append(host);
      chart = new StepChart(host, metric, settings);
      charts.set(metric, chart);
    }
    // about two points per pixel: the server downsamples to that
    const steps = await getJSON<Steps>("/api/steps", { names: names.join(","), metric, x: settings.time ? "time" : "step", points: 2 * chart.width() });
    if (!stopped) chart.set(steps.series, { ...settings });
  }

  /** Smoothing and the log axis redraw the data at hand; x = time asks the server again. */
  function redraw(refetch: boolean): void {
    save();
    for (const [metric, chart] of charts) {
      if (refetch) void loadSteps(metric);
      else chart.restyle({ ...settings });
    }
  }

  logBox.addEventListener("change", () => {
    settings.log = logBox.checked;
    redraw(false);
  });
  timeBox.addEventListener("change", () => {
    settings.time = timeBox.checked;
    redraw(true);
  });
  smoothing.addEventListener("input", () => {
    settings.smoothing = Number(smoothing.value);
    redraw(false);
  });

  async function load(): Promise<void> {
    let cmp: Comparison;
    try {
      cmp = await getJSON<Comparison>("/api/compare", { names: names.join(",") });
    } catch (error) {
      root.replaceChildren(h("p", { class: "filter-error" }, (error as Error).message));
      return;
    }
    if (stopped) return;
    root.replaceChildren(
      h("h1", null, `Compare ${cmp.names.length} experiments`),
      section("Params that differ", paramsTable(cmp)),
      section("Metrics", h("p", { class: "muted" }, `marks against ${cmp.names[0]}`), metricsTable(cmp)),
      section("Gate", gateBlock(cmp.gate)),
      section("Step metrics", controls, cmp.step_metrics.length ? plots : h("p", { class: "muted" }, "no step metric in common")),
    );
    await Promise.all(cmp.step_metrics.map((metric) => loadSteps(metric)));
    requestAnimationFrame(() =>
      setTimeout(() => {
        document.body.dataset.compareReady = "1";
        performance.mark("tether:compare-painted");
      }, 0),
    );
  }

  void load();
  return () => {
    stopped = true;
    for (const chart of charts.values()) chart.destroy();
  };
}
