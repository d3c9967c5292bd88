// Step-metric charts with uPlot: one series per experiment, log/linear y, EMA smoothing,
// x = step or wall time. The server has already downsampled each series to about 2× the width.

import uPlot from "uplot";
import type { StepSeries } from "./api";

export interface ChartSettings {
  log: boolean;
  smoothing: number; // 0 (raw) .. 0.99
  time: boolean;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

export function color(index: number): string {
  return index < PALETTE.length ? PALETTE[index] : `hsl(${(index * 137.5) % 360} 60% 45%)`;
}

/** Exponential moving average, debiased so the first points are not pulled towards zero. */
export function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values;
  let last = 0;
  let steps = 0;
  return values.map((value) => {
    if (value === null || !Number.isFinite(value)) return value;
    last = last * weight + (1 - weight) * value;
    steps += 1;
    return last / (1 - weight ** steps);
  });
}

function aligned(series: StepSeries[], settings: ChartSettings): uPlot.AlignedData {
  const tables = series.map((one) => {
    let y = smooth(one.y, settings.smoothing);
    if (settings.log) y = y.map((v) => (v !== null && v > 0 ? v : null));
    return [one.x, y] as uPlot.AlignedData;
  });
  if (tables.length === 1) return tables[0];
  return uPlot.join(tables);
}

export class StepChart {
  private plot: uPlot | null = null;
  private series: StepSeries[] = [];

  constructor(
    private readonly host: HTMLElement,
    private readonly title: string,
    private settings: ChartSettings,
  ) {}

  set(series: StepSeries[], settings: ChartSettings = this.settings): void {
    const rebuild = !this.plot || settings.log !== this.settings.log || settings.time !== this.settings.time || series.length !== this.series.length;
    this.series = series;
    this.settings = settings;
    const data = aligned(series, settings);
    if (rebuild) this.build(data);
    else this.plot?.setData(data);
    this.host.dataset.series = String(series.length);
    this.host.dataset.points = String(data[0].length);
  }

  /** The width the chart draws at, in CSS pixels. */
  width(): number {
    return Math.max(300, Math.min(this.host.clientWidth || 640, 1400));
  }

  restyle(settings: ChartSettings): void {
    this.set(this.series, settings);
  }

  /** Live runs: points appended to one series. */
  append(name: string, points: [number, number, number][]): void {
    const one = this.series.find((s) => s.name === name);
    if (!one) return;
    for (const [step, value, wall] of points) {
      one.x.push(this.settings.time ? wall : step);
      one.y.push(value);
    }
    this.set(this.series);
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }

  private build(data: uPlot.AlignedData): void {
    this.plot?.destroy();
    const width = this.width();
    const options: uPlot.Options = {
      title: this.title,
      width,
      height: 260,
      // x = time is seconds since the series' first point (docs/view.md), not a date.
      scales: { x: { time: false }, y: { distr: this.settings.log ? 3 : 1 } },
      series: [
        { label: this.settings.time ? "seconds" : "step" },
        ...this.series.map((one, index) => ({
          label: one.name,
          stroke: color(index),
          width: 1.5,
          spanGaps: true,
          points: { show: false },
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    this.plot = new uPlot(options, data, this.host);
  }
}
