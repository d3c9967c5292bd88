// The queue: entries and workers, refreshed every two seconds; kill/retry/remove buttons
// POST with the CSRF header and are disabled when the server is read-only.

import { getJSON, loadSession, post, type QueueEntry, type QueueState, type QueueWorker } from "./api";
import { expLink, formatCreated, formatDuration, grid, h, section, show, statusLabel, tagList } from "./dom";
import type { Route } from "./route";

const REFRESH_MS = 2000;
const ACTIONS = ["kill", "retry", "remove"] as const;

const HEADINGS = ["id", "name", "state", "needs", "attempt", "worker", "host", "elapsed", "silence", "retries", "queued", ""];

/** The reason no live worker can take a waiting entry, on a full-width line under it. */
function blockedRow(id: string, reason: string): HTMLTableRowElement {
  return h("tr", { class: "blocked-row", "data-blocked-for": id }, h("td", { colspan: HEADINGS.length }, h("div", { class: "blocked-reason" }, reason)));
}

/** A worker's last heartbeat (announcement or lease renewal), else how long its announcement keeps it live. */
function presence(worker: QueueWorker): string {
  if (worker.last_heartbeat !== null && worker.last_heartbeat !== undefined) return formatCreated(worker.last_heartbeat, true);
  if (worker.until !== null && worker.until !== undefined) return `presence until ${formatCreated(worker.until, true)}`;
  return "";
}

export function queueView(root: HTMLElement, _route: Route): () => void {
  let timer = 0;
  let stopped = false;
  let readOnly = true;
  const message = h("div", { class: "error-slot" });
  const entries = h("div");
  const workers = h("div");
  const backend = h("span", { class: "muted" });
  root.append(h("h1", null, "Queue ", backend), message, section("Entries", entries), section("Workers", workers));

  function actionButtons(entry: QueueEntry): HTMLElement {
    return h(
      "span",
      { class: "actions" },
      ACTIONS.map((action) => {
        const button = h("button", { type: "button", "data-action": action, disabled: readOnly, title: readOnly ? "read-only server" : `${action} ${entry.name}` }, action);
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            await post(`/api/queue/${encodeURIComponent(entry.id)}/${action}`);
            message.replaceChildren();
          } catch (error) {
            message.replaceChildren(h("div", { class: "filter-error" }, `${action} ${entry.name}: ${(error as Error).message}`));
          }
          void refresh();
        });
        return button;
      }),
    );
  }

  function entriesTable(state: QueueState): HTMLElement {
    if (state.entries.length === 0) return h("p", { class: "muted" }, "the queue is empty");
    return grid(
      HEADINGS,
      state.entries.flatMap((entry) => [
        h(
          "tr",
          { "data-entry": entry.id, class: entry.blocked ? "blocked" : null },
          h("td", { class: "mono" }, entry.id),
          h("td", null, expLink(entry.name)),
          h(
            "td",
            { title: entry.error ?? "" },
            statusLabel(entry.state),
            entry.kill_requested ? " (kill requested)" : "",
            entry.blocked ? h("span", { class: "blocked-mark", title: entry.blocked }, " blocked") : null,
          ),
          h("td", { class: "needs" }, tagList(entry.requires)),
          h("td", null, show(entry.attempt)),
          h("td", null, show(entry.worker)),
          h("td", null, show(entry.host)),
          h("td", null, formatDuration(entry.elapsed)),
          h("td", null, formatDuration(entry.silence)),
          h("td", null, show(entry.retries)),
          h("td", null, formatCreated(entry.queued_at)),
          h("td", null, actionButtons(entry)),
        ),
        entry.blocked ? blockedRow(entry.id, entry.blocked) : null,
      ]).filter((row): row is HTMLTableRowElement => row !== null),
    );
  }

  function workersTable(state: QueueState): HTMLElement {
    if (state.workers.length === 0) return h("p", { class: "muted" }, "no workers");
    return grid(
      ["id", "host", "state", "queues", "tags", "entries", "heartbeat"],
      state.workers.map((worker) =>
        h(
          "tr",
          { "data-worker": worker.id },
          h("td", { class: "mono" }, worker.id),
          h("td", null, worker.host),
          h("td", null, statusLabel(worker.state)),
          h("td", { class: "queues" }, tagList(worker.queues)),
          h("td", { class: "worker-tags" }, tagList(worker.tags, "no tags")),
          h("td", { class: "mono" }, (worker.entries ?? []).join(", ")),
          h("td", { class: "presence" }, presence(worker)),
        ),
      ),
    );
  }

  async function refresh(): Promise<void> {
    clearTimeout(timer);
    try {
      readOnly = (await loadSession()).read_only;
      const state = await getJSON<QueueState>("/api/queue");
      if (stopped) return;
      backend.textContent = `(${state.backend})`;
      entries.replaceChildren(entriesTable(state));
      workers.replaceChildren(workersTable(state));
      document.body.dataset.queueRenders = String(Number(document.body.dataset.queueRenders ?? 0) + 1);
    } catch (error) {
      message.replaceChildren(h("div", { class: "filter-error" }, (error as Error).message));
    }
    if (!stopped) timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }

  void refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
