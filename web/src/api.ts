// The JSON API of docs/view.md: typed fetches, the CSRF header on writes, errors with carets.

export interface Session {
  repo: string;
  read_only: boolean;
  csrf: string;
  version: string;
}

export interface ErrorBody {
  message: string;
  code: number;
  caret: number | null;
  column: number | null;
  text: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(body.message);
  }
}

export type Query = Record<string, string | number | undefined | null>;

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function parse<T>(response: Response): Promise<T> {
  if (response.ok) return (await response.json()) as T;
  let body: ErrorBody = { message: `${response.status} ${response.statusText}`, code: 0, caret: null, column: null, text: null };
  try {
    const json = (await response.json()) as { error?: ErrorBody };
    if (json.error) body = json.error;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(response.status, body);
}

export async function getJSON<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  return parse<T>(await fetch(url(path, query), { signal, headers: { Accept: "application/json" } }));
}

let session: Promise<Session> | null = null;

/** The session (CSRF token, read-only), asked once per page. */
export function loadSession(): Promise<Session> {
  session ??= getJSON<Session>("/api/session").catch((error: unknown) => {
    session = null;
    throw error;
  });
  return session;
}

export async function post(path: string): Promise<void> {
  const { csrf } = await loadSession();
  await parse<unknown>(await fetch(path, { method: "POST", headers: { "X-Tether-CSRF": csrf } }));
}

export interface ExperimentRow {
  name: string;
  ref: string;
  baseline: string;
  baseline_names: string[];
  created: string;
  status: string;
  duration: number | null;
  message?: string;
  params: Record<string, unknown>;
  metrics: Record<string, number | string>;
}

export interface MetricColumn {
  name: string;
  direction: "max" | "min" | null;
}

/** A run in progress, not recorded yet: in the work tree, a `--temp` folder or a queue attempt here. */
export interface RunningNow {
  name: string;
  run_id: string;
  started: number;
  where?: "in-place" | "temp" | "queued";
}

export interface ExperimentsPage {
  total: number;
  offset: number;
  rows: ExperimentRow[];
  running?: RunningNow[];
  columns: { params: string[]; all_params: string[]; metrics: MetricColumn[] };
  best: Record<string, { value: number; names: string[] }>;
  baselines: { sha: string; names: string[]; subject: string; count: number }[];
}

export interface Stage {
  name: string;
  status: string;
  duration: number | null;
  exit_code: number | null;
  reasons?: string[] | null;
  error?: string | null;
  attempt?: number | null;
}

export interface Experiment extends Omit<ExperimentRow, "baseline"> {
  baseline: string | null;
  stages: Stage[];
  error?: string | null;
  code?: Record<string, unknown>;
  environment: Record<string, unknown>;
  diff: string;
  outputs: { path: string; hash: string; size: number | null }[];
  commit: string;
  branch: string | null;
  step_metrics: string[];
  running: boolean;
}

export interface StepSeries {
  name: string;
  x: number[];
  y: (number | null)[];
}

export interface Steps {
  metric: string;
  x: string;
  series: StepSeries[];
}

export interface Comparison {
  names: string[];
  params_differing: Record<string, Record<string, unknown>>;
  metrics: Record<
    string,
    {
      direction: string | null;
      values: Record<string, unknown>;
      best: string | null;
      marks: Record<string, "better" | "worse" | "same" | null>;
    }
  >;
  gate: { rev?: string; verdicts?: Record<string, string>; results?: unknown[] } | null;
  step_metrics: string[];
}

export interface QueueEntry {
  id: string;
  name: string;
  state: string;
  attempt: number | null;
  worker: string | null;
  host: string | null;
  elapsed: number | null;
  silence: number | null;
  retries: number | null;
  queued_at: string | number | null;
  error?: string | null;
  kill_requested?: boolean;
  queue?: string;
  requires?: string[];
  /** Why no live worker can take this waiting entry, else null. */
  blocked?: string | null;
}

/** A live worker, busy or idle: its announcement (`until`) has not run out. */
export interface QueueWorker {
  id: string;
  host: string;
  state: string;
  entries?: string[];
  queues?: string[];
  tags?: string[];
  until?: number | null;
  /** Newest lease renewal of its entries; null when idle. */
  last_heartbeat: string | number | null;
}

export interface QueueState {
  entries: QueueEntry[];
  workers: QueueWorker[];
  backend: string;
}
