import "uplot/dist/uPlot.min.css";
import "./style.css";
import { loadSession } from "./api";
import { h } from "./dom";
import { currentRoute, type View } from "./route";
import { compareView } from "./compare";
import { experimentView } from "./experiment";
import { queueView } from "./queue";
import { tableView } from "./table";

function pick(path: string): View {
  if (path.startsWith("/exp/")) return experimentView;
  if (path === "/compare") return compareView;
  if (path === "/queue") return queueView;
  return tableView;
}

let stop: () => void = () => {};

function render(): void {
  stop();
  const root = document.getElementById("app") as HTMLElement;
  root.replaceChildren();
  const route = currentRoute();
  for (const link of document.querySelectorAll<HTMLAnchorElement>("#bar nav a")) {
    link.classList.toggle("active", link.dataset.path === (route.path.startsWith("/exp/") ? "/" : route.path));
  }
  stop = pick(route.path)(root, route);
}

function start(): void {
  const bar = document.getElementById("bar") as HTMLElement;
  const repo = h("span", { class: "repo" });
  const badge = h("span", { class: "badge", hidden: true }, "read-only");
  const version = h("span", { class: "version" });
  bar.append(
    h("a", { class: "brand", href: "#/" }, "tether"),
    repo,
    h(
      "nav",
      null,
      h("a", { href: "#/", "data-path": "/" }, "Experiments"),
      h("a", { href: "#/compare", "data-path": "/compare" }, "Compare"),
      h("a", { href: "#/queue", "data-path": "/queue" }, "Queue"),
    ),
    badge,
    version,
  );
  // The session only labels the bar: the page does not wait for it.
  loadSession()
    .then((session) => {
      repo.textContent = session.repo;
      badge.hidden = !session.read_only;
      version.textContent = `v${session.version}`;
    })
    .catch(() => undefined);
  window.addEventListener("hashchange", render);
  render();
}

start();
