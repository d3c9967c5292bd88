// One experiment: stages, params, metrics, step plots, environment, diff, outputs and logs;
// live over server-sent events while it runs.

import { getJSON, type Experiment, type Steps } from "./api";
import { StepChart } from "./chart";
import { formatCreated, formatDuration, h, keyValueTable, section, show } from "./dom";
import { href, type Route } from "./route";

const LOG_TAIL = 500;

function baselineLink(exp: Experiment): HTMLElement {
  const label = exp.baseline_names.length ? exp.baseline_names.join(", ") : exp.baseline.slice(0, 8);
  return h(
    "span",
    null,
    "baseline ",
    h("a", { href: href("/", { filter: `baseline == '${exp.baseline}'` }), title: exp.baseline }, label),
    ` (${exp.baseline.slice(0, 8)})`,
    exp.branch ? ` · branch ${exp.branch}` : "",
    exp.commit ? ` · commit ${exp.commit.slice(0, 8)}` : "",
  );
}

function stagesTable(exp: Experiment): HTMLElement {
  if (exp.stages.length === 0) return h("p", { class: "muted" }, "no stages");
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, h("th", null, "stage"), h("th", null, "status"), h("th", null, "duration"), h("th", null, "exit"))),
    h(
      "tbody",
      null,
      exp.stages.map((stage) =>
        h(
          "tr",
          { "data-stage": stage.name },
          h("td", null, stage.name),
          h("td", null, h("span", { class: `status s-${stage.status.replace(/[^a-z-]/g, "")}` }, stage.status)),
          h("td", null, formatDuration(stage.duration)),
          h("td", null, show(stage.exit_code)),
        ),
      ),
    ),
  );
}

function outputsTable(exp: Experiment): HTMLElement {
  if (exp.outputs.length === 0) return h("p", { class: "muted" }, "no outputs");
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, h("th", null, "path"), h("th", null, "hash"), h("th", null, "size"))),
    h(
      "tbody",
      null,
      exp.outputs.map((out) => h("tr", null, h("td", null, out.path), h("td", { class: "mono" }, out.hash), h("td", null, show(out.size)))),
    ),
  );
}

export function experimentView(root: HTMLElement, route: Route): () => void {
  const name = decodeURIComponent(route.path.slice("/exp/".length));
  const charts = new Map<string, StepChart>();
  let events: EventSource | null = null;
  let stopped = false;

  async function load(): Promise<void> {
    let exp: Experiment;
    try {
      exp = await getJSON<Experiment>(`/api/experiments/${encodeURIComponent(name)}`);
    } catch (error) {
      root.replaceChildren(h("p", { class: "filter-error" }, `${name}: ${(error as Error).message}`));
      return;
    }
    if (stopped) return;
    const status = h("span", { class: `status s-${exp.status.replace(/[^a-z-]/g, "")}`, id: "exp-status" }, exp.status);
    const logs = h("pre", { class: "logs", id: "logs" });
    const plots = h("div", { class: "plots" });
    root.replaceChildren(
      h("h1", null, exp.name, " ", status),
      h("p", { class: "message" }, exp.message ?? ""),
      h("p", { class: "muted" }, `created ${formatCreated(exp.created)} · ${formatDuration(exp.duration)} · `, baselineLink(exp)),
      section("Stages", stagesTable(exp)),
      h("div", { class: "columns2" }, section("Params", keyValueTable(Object.entries(exp.params))), section("Metrics", keyValueTable(Object.entries(exp.metrics)))),
      section("Step metrics", plots),
      section("Logs", logs),
      section("Environment", keyValueTable(Object.entries(exp.environment))),
      section("Uncommitted diff", exp.diff ? h("pre", { class: "diff" }, exp.diff) : h("p", { class: "muted" }, "clean working tree")),
      section("Outputs", outputsTable(exp)),
    );
    for (const metric of exp.step_metrics) void loadSteps(plots, metric);
    await loadLogs(logs);
    if (exp.running && !stopped) follow(status, logs, plots);
  }

  async function loadLogs(logs: HTMLElement): Promise<void> {
    const tail = await getJSON<{ lines: string[] }>(`/api/experiments/${encodeURIComponent(name)}/logs`, { tail: LOG_TAIL });
    logs.prepend(document.createTextNode(tail.lines.map((line) => `${line}\n`).join("")));
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
    if (stopped) return;
    chart.set(steps.series.length ? steps.series : [{ name, x: [], y: [] }]);
  }

  function follow(status: HTMLElement, logs: HTMLElement, plots: HTMLElement): void {
    events = new EventSource(`/api/experiments/${encodeURIComponent(name)}/live`);
    events.addEventListener("log", (event) => {
      const data = JSON.parse((event as MessageEvent<string>).data) as { stage: string; lines: string[] };
      logs.append(document.createTextNode(data.lines.map((line) => `${line}\n`).join("")));
      logs.scrollTop = logs.scrollHeight;
    });
    events.addEventListener("step", (event) => {
      const data = JSON.parse((event as MessageEvent<string>).data) as { metric: string; points: [number, number, number][] };
      let chart = charts.get(data.metric);
      if (!chart) {
        chart = addChart(plots, data.metric);
        chart.set([{ name, x: [], y: [] }]);
      }
      chart.append(name, data.points);
    });
    events.addEventListener("status", (event) => {
      status.textContent = (JSON.parse((event as MessageEvent<string>).data) as { status: string }).status;
    });
    events.addEventListener("end", () => {
      events?.close();
      events = null;
      document.body.dataset.liveEnded = "1";
    });
  }

  void load();
  return () => {
    stopped = true;
    events?.close();
    for (const chart of charts.values()) chart.destroy();
  };
}
