// One experiment: stages, params, metrics, step plots, environment, diff, outputs and logs;
// live over server-sent events while it runs (the stream replays the run from its start).

import { ApiError, getJSON, type Experiment, type Steps } from "./api";
import { StepChart } from "./chart";
import { formatCreated, formatDuration, grid, h, keyValueTable, section, show, statusLabel } from "./dom";
import { href, type Route } from "./route";

const LOG_TAIL = 500;
const RETRY_MS = 1000;

function statusBadge(status: string): HTMLElement {
  const badge = statusLabel(status);
  badge.id = "exp-status";
  return badge;
}

function lineage(exp: Experiment): HTMLElement {
  const parts: (HTMLElement | string)[] = [];
  if (exp.baseline) {
    const label = exp.baseline_names.length ? exp.baseline_names.join(", ") : exp.baseline.slice(0, 8);
    parts.push("baseline ", h("a", { href: href("/", { filter: `baseline == '${exp.baseline}'` }), title: exp.baseline }, label), ` (${exp.baseline.slice(0, 8)})`);
  }
  if (exp.branch) parts.push(` · branch ${exp.branch}`);
  if (exp.commit) parts.push(` · commit ${exp.commit.slice(0, 8)}`);
  return h("span", null, parts);
}

function stagesTable(exp: Experiment): HTMLElement {
  if (exp.stages.length === 0) return h("p", { class: "muted" }, exp.running ? "running…" : "no stages");
  return grid(
    ["stage", "status", "duration", "exit", "attempt", "why it ran", "error"],
    exp.stages.map((stage) =>
      h(
        "tr",
        { "data-stage": stage.name },
        h("td", null, stage.name),
        h("td", null, statusLabel(stage.status)),
        h("td", null, formatDuration(stage.duration)),
        h("td", null, show(stage.exit_code)),
        h("td", null, show(stage.attempt)),
        h("td", null, (stage.reasons ?? []).join("; ")),
        h("td", { class: "bad" }, show(stage.error)),
      ),
    ),
  );
}

function outputsTable(exp: Experiment): HTMLElement {
  if (exp.outputs.length === 0) return h("p", { class: "muted" }, "no outputs");
  return grid(
    ["path", "hash", "size"],
    exp.outputs.map((out) => h("tr", null, h("td", null, out.path), h("td", { class: "mono" }, out.hash), h("td", null, show(out.size)))),
  );
}

function lines(text: string[]): Text {
  return document.createTextNode(text.map((line) => `${line}\n`).join(""));
}

export function experimentView(root: HTMLElement, route: Route): () => void {
  const name = decodeURIComponent(route.path.slice("/exp/".length));
  const path = `/api/experiments/${encodeURIComponent(name)}`;
  let charts = new Map<string, StepChart>();
  let events: EventSource | null = null;
  let stopped = false;
  let retry = 0;

  function dropCharts(): void {
    for (const chart of charts.values()) chart.destroy();
    charts = new Map();
  }

  async function load(): Promise<void> {
    let exp: Experiment;
    try {
      exp = await getJSON<Experiment>(path);
    } catch (error) {
      root.replaceChildren(h("p", { class: "filter-error" }, `${name}: ${(error as Error).message}`));
      // Not recorded (or started) yet, e.g. a run about to start: look again shortly.
      if (error instanceof ApiError && error.status === 404 && !stopped) retry = window.setTimeout(() => void load(), RETRY_MS);
      return;
    }
    if (stopped) return;
    dropCharts();
    const status = statusBadge(exp.status);
    const logs = h("pre", { class: "logs", id: "logs" });
    const plots = h("div", { class: "plots" });
    root.replaceChildren(
      h("h1", null, exp.name, " ", status),
      h("p", { class: "message" }, exp.message ?? ""),
      h("p", { class: "muted" }, [`created ${formatCreated(exp.created)}`, formatDuration(exp.duration)].filter(Boolean).join(" · "), exp.baseline ? " · " : "", lineage(exp)),
      exp.error ? h("pre", { class: "filter-error" }, exp.error) : "",
      section("Stages", stagesTable(exp)),
      h("div", { class: "columns2" }, section("Params", keyValueTable(Object.entries(exp.params))), section("Metrics", keyValueTable(Object.entries(exp.metrics)))),
      section("Step metrics", plots),
      section("Logs", logs),
      section("Code", keyValueTable(Object.entries(exp.code ?? {}).filter(([key]) => key !== "diff"))),
      section("Uncommitted diff", exp.diff ? h("pre", { class: "diff" }, exp.diff) : h("p", { class: "muted" }, "clean working tree")),
      section("Environment", keyValueTable(Object.entries(exp.environment))),
      section("Outputs", outputsTable(exp)),
    );
    if (exp.running) {
      follow(status, logs, plots); // the stream replays logs and steps from the start
      return;
    }
    events?.close();
    for (const metric of exp.step_metrics) void loadSteps(plots, metric);
    const tail = await getJSON<{ lines: string[] }>(`${path}/logs`, { tail: LOG_TAIL });
    logs.append(lines(tail.lines));
    document.body.dataset.experimentReady = "1";
  }

  function addChart(plots: HTMLElement, metric: string): StepChart {
    const host = h("div", { class: "chart", "data-metric": metric });
    plots.append(host);
    const chart = new StepChart(host, metric, { log: false, smoothing: 0, time: false });
    charts.set(metric, chart);
    return chart;
  }

  async function loadSteps(plots: HTMLElement, metric: string): Promise<void> {
    const chart = addChart(plots, metric);
    const steps = await getJSON<Steps>("/api/steps", { names: name, metric, x: "step", points: 1200 });
    if (!stopped) chart.set(steps.series.length ? steps.series : [{ name, x: [], y: [] }]);
  }

  function follow(status: HTMLElement, logs: HTMLElement, plots: HTMLElement): void {
    events?.close();
    const source = new EventSource(`${path}/live`);
    events = source;
    source.addEventListener("log", (event) => {
      const data = JSON.parse((event as MessageEvent<string>).data) as { stage: string; lines: string[] };
      logs.append(lines(data.lines));
      logs.scrollTop = logs.scrollHeight;
    });
    source.addEventListener("step", (event) => {
      const data = JSON.parse((event as MessageEvent<string>).data) as { metric: string; points: [number, number, number][] };
      let chart = charts.get(data.metric);
      if (!chart) {
        chart = addChart(plots, data.metric);
        chart.set([{ name, x: [], y: [] }]);
      }
      chart.append(name, data.points);
    });
    source.addEventListener("status", (event) => {
      status.textContent = (JSON.parse((event as MessageEvent<string>).data) as { status: string }).status;
    });
    source.addEventListener("end", () => {
      source.close();
      if (events === source) events = null;
      if (!stopped) void load(); // the recorded experiment: metrics, outputs, final logs
    });
  }

  void load();
  return () => {
    stopped = true;
    clearTimeout(retry);
    events?.close();
    dropCharts();
  };
}
