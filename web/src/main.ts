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

async function start(): Promise<void> {
  const bar = document.getElementById("bar") as HTMLElement;
  const session = await loadSession().catch(() => null);
  bar.append(
    h("a", { class: "brand", href: "#/" }, "tether"),
    h("span", { class: "repo" }, session?.repo ?? ""),
    h(
      "nav",
      null,
      h("a", { href: "#/", "data-path": "/" }, "Experiments"),
      h("a", { href: "#/compare", "data-path": "/compare" }, "Compare"),
      h("a", { href: "#/queue", "data-path": "/queue" }, "Queue"),
    ),
    h("span", { class: "badge", hidden: !session?.read_only }, "read-only"),
    h("span", { class: "version" }, session ? `v${session.version}` : ""),
  );
  window.addEventListener("hashchange", render);
  render();
}

void start();
