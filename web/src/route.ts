// Hash routing: `#/` table, `#/exp/NAME`, `#/compare?names=a,b`, `#/queue`; state in the query.

export interface Route {
  path: string;
  query: URLSearchParams;
}

export function currentRoute(): Route {
  const hash = location.hash.replace(/^#/, "") || "/";
  const mark = hash.indexOf("?");
  const path = mark < 0 ? hash : hash.slice(0, mark);
  return { path, query: new URLSearchParams(mark < 0 ? "" : hash.slice(mark + 1)) };
}

export function href(path: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  const text = params.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/** Keep a view's state in the URL without re-rendering the view (no hashchange event). */
export function replaceQuery(path: string, query: Record<string, string | undefined>): void {
  history.replaceState(null, "", href(path, query));
}

/** A view renders into its root and returns how to stop (timers, event sources, charts). */
export type View = (root: HTMLElement, route: Route) => () => void;
