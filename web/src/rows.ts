// The table's rows, fetched from the server a page at a time as the user scrolls.

import { getJSON, type ExperimentRow, type ExperimentsPage } from "./api";

export interface TableQuery {
  filter: string;
  sort: string;
  order: "asc" | "desc";
}

const PAGE = 200;

export class RowSource {
  private pages = new Map<number, ExperimentRow[]>();
  private pending = new Set<number>();
  private generation = 0;
  private query: TableQuery = { filter: "", sort: "", order: "asc" };
  total = 0;
  onPage: (first: number, last: number) => void = () => {};

  /** Start over with a new query; resolves with its first page (or rejects with an ApiError). */
  async reset(query: TableQuery): Promise<ExperimentsPage> {
    const generation = ++this.generation;
    const page = await this.fetch(query, 0);
    if (generation !== this.generation) throw new Error("superseded");
    this.query = query;
    this.pages = new Map([[0, page.rows]]);
    this.pending = new Set();
    this.total = page.total;
    return page;
  }

  row(index: number): ExperimentRow | undefined {
    return this.pages.get(Math.floor(index / PAGE))?.[index % PAGE];
  }

  /** Make sure the rows first..last are loaded or on their way. */
  ensure(first: number, last: number): void {
    for (let page = Math.floor(first / PAGE); page <= Math.floor(last / PAGE); page++) {
      if (this.pages.has(page) || this.pending.has(page)) continue;
      this.pending.add(page);
      const generation = this.generation;
      this.fetch(this.query, page)
        .then((result) => {
          if (generation !== this.generation) return;
          this.pages.set(page, result.rows);
          this.onPage(page * PAGE, page * PAGE + result.rows.length - 1);
        })
        .catch(() => undefined)
        .finally(() => this.pending.delete(page));
    }
  }

  private fetch(query: TableQuery, page: number): Promise<ExperimentsPage> {
    return getJSON<ExperimentsPage>("/api/experiments", {
      filter: query.filter,
      sort: query.sort,
      order: query.sort ? query.order : undefined,
      offset: page * PAGE,
      limit: PAGE,
      all: 1,
    });
  }
}
