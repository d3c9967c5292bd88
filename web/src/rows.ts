// The table's rows, fetched from the server a page at a time as the user scrolls, and
// grouped under their baseline commits as `tether show` groups them: one header item per
// baseline, then that baseline's rows (its own paged query: `baseline == 'SHA' and (...)`).

import { getJSON, type ExperimentRow, type ExperimentsPage } from "./api";

export interface TableQuery {
  filter: string;
  sort: string;
  order: "asc" | "desc";
}

export interface Baseline {
  sha: string;
  names: string[];
  subject: string;
  count: number;
}

export type Item = { kind: "header"; baseline: Baseline } | { kind: "row"; row: ExperimentRow | undefined };

const PAGE = 200;

function fetchPage(query: TableQuery, page: number): Promise<ExperimentsPage> {
  return getJSON<ExperimentsPage>("/api/experiments", {
    filter: query.filter,
    sort: query.sort,
    order: query.sort ? query.order : undefined,
    offset: page * PAGE,
    limit: PAGE,
    all: 1,
  });
}

/** The rows of one query, loaded a page at a time. */
class PagedRows {
  private readonly pages = new Map<number, ExperimentRow[]>();
  private readonly pending = new Set<number>();
  private partial = false; // page 0 holds only a known prefix of its rows

  /** `prefix`: the first rows, already known; page 0 is fetched if they are fewer than `count`. */
  constructor(
    private readonly query: TableQuery,
    private readonly alive: () => boolean,
    private readonly loaded: (first: number, last: number) => void,
    prefix: ExperimentRow[],
    count: number,
  ) {
    if (prefix.length === 0) return;
    this.pages.set(0, prefix);
    this.partial = prefix.length < Math.min(count, PAGE);
  }

  row(index: number): ExperimentRow | undefined {
    return this.pages.get(Math.floor(index / PAGE))?.[index % PAGE];
  }

  ensure(first: number, last: number): void {
    for (let page = Math.floor(first / PAGE); page <= Math.floor(last / PAGE); page++) {
      if ((this.pages.has(page) && !(page === 0 && this.partial)) || this.pending.has(page)) continue;
      this.pending.add(page);
      fetchPage(this.query, page)
        .then((result) => {
          if (!this.alive()) return;
          this.pages.set(page, result.rows);
          if (page === 0) this.partial = false;
          this.loaded(page * PAGE, page * PAGE + result.rows.length - 1);
        })
        .catch(() => undefined)
        .finally(() => this.pending.delete(page));
    }
  }
}

interface Group {
  baseline: Baseline;
  start: number; // item index of its header
  rows: PagedRows;
}

function within(sha: string, filter: string): string {
  const only = `baseline == '${sha}'`;
  return filter ? `${only} and (${filter})` : only;
}

export class RowSource {
  private groups: Group[] = [];
  private generation = 0;
  total = 0; // items: headers and rows
  onPage: (first: number, last: number) => void = () => {};

  /** Start over with a new query; resolves with its first page (or rejects with an ApiError). */
  async reset(query: TableQuery): Promise<ExperimentsPage> {
    const generation = ++this.generation;
    const page = await fetchPage(query, 0);
    if (generation !== this.generation) throw new Error("superseded");
    const alive = (): boolean => generation === this.generation;
    const single = page.baselines.length === 1;
    let start = 0;
    this.groups = page.baselines.map((baseline) => {
      const group: Group = { baseline, start, rows: undefined as unknown as PagedRows };
      const groupQuery = single ? query : { ...query, filter: within(baseline.sha, query.filter) };
      // Sorted the same way, a baseline's rows among the first page are its first rows.
      const prefix = single ? page.rows : page.rows.filter((row) => row.baseline === baseline.sha);
      group.rows = new PagedRows(groupQuery, alive, (first, last) => this.onPage(group.start + 1 + first, group.start + 1 + last), prefix, baseline.count);
      start += baseline.count + 1;
      return group;
    });
    this.total = start;
    return page;
  }

  private groupAt(index: number): Group | undefined {
    let low = 0;
    let high = this.groups.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.groups[middle].start <= index) low = middle;
      else high = middle - 1;
    }
    return this.groups[low];
  }

  item(index: number): Item | undefined {
    const group = this.groupAt(index);
    if (!group) return undefined;
    if (index === group.start) return { kind: "header", baseline: group.baseline };
    return { kind: "row", row: group.rows.row(index - group.start - 1) };
  }

  /** Make sure the items first..last are loaded or on their way. */
  ensure(first: number, last: number): void {
    for (const group of this.groups) {
      const end = group.start + group.baseline.count;
      if (end < first || group.start > last) continue;
      const from = Math.max(first, group.start + 1) - group.start - 1;
      const to = Math.min(last, end) - group.start - 1;
      if (to >= from) group.rows.ensure(from, to);
    }
  }
}
