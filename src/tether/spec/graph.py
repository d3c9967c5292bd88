"""Edges between stages (a dependency on another stage's output) and the checks on them."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tether.spec.model import Stage
    from tether.spec.nodes import Problems


class OutputIndex:
    """Every declared output, to find those equal to, inside, or containing a path."""

    def __init__(self, stages: Mapping[str, Stage]) -> None:
        self.writers: dict[str, list[str]] = {}
        for stage in stages.values():
            for out in dict.fromkeys(stage.outs):
                self.writers.setdefault(out, []).append(stage.name)
        self.sorted_paths = sorted(self.writers)

    def overlapping(self, path: str) -> list[tuple[str, str]]:
        """`(output, writer)` pairs whose output overlaps `path`."""
        if path == ".":
            found = list(self.sorted_paths)
        else:
            parts = path.split("/")
            found = [
                prefix
                for prefix in ("/".join(parts[:i]) for i in range(1, len(parts) + 1))
                if prefix in self.writers
            ]
            if "." in self.writers:
                found.append(".")
            start = bisect.bisect_left(self.sorted_paths, path + "/")
            for candidate in self.sorted_paths[start:]:
                if not candidate.startswith(path + "/"):
                    break
                found.append(candidate)
        return [(out, writer) for out in found for writer in self.writers[out]]


def upstream_map(stages: Mapping[str, Stage]) -> dict[str, set[str]]:
    """For each stage, the stages whose outputs it depends on directly (itself excluded)."""
    index = OutputIndex(stages)
    upstream: dict[str, set[str]] = {}
    for stage in stages.values():
        upstream[stage.name] = {
            writer
            for dep in stage.deps
            for _, writer in index.overlapping(dep)
            if writer != stage.name
        }
    return upstream


def topological_order(
    stages: Mapping[str, Stage],
    upstream: Mapping[str, set[str]],
    only: set[str] | None = None,
) -> list[str]:
    """Stages with each after its upstream; ties keep declaration order."""
    position = {name: i for i, name in enumerate(stages)}
    chosen = set(stages) if only is None else only
    waiting = {name: len(upstream[name] & chosen) for name in chosen}
    downstream: dict[str, list[str]] = {name: [] for name in chosen}
    for name in chosen:
        for up in upstream[name] & chosen:
            downstream[up].append(name)
    ready = [(position[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for down in downstream[name]:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, (position[down], down))
    return order


def check_graph(stages: Mapping[str, Stage], problems: Problems) -> None:
    """Report outputs that are also own dependencies, outputs written twice, and cycles."""
    label = problems.label
    for stage in stages.values():
        own = OutputIndex({stage.name: stage})
        for dep in stage.deps:
            for out, _ in own.overlapping(dep):
                problems.add(
                    stage.line,
                    f"stages.{stage.name}.outs",
                    f"{out!r} is also a dependency of the same stage ({dep!r})",
                )
    _check_shared_outputs(stages, problems, label)
    _check_cycles(stages, problems)


def _where(stage: Stage, label: str) -> str:
    return f"{label}:{stage.line}" if stage.line else label


def _check_shared_outputs(stages: Mapping[str, Stage], problems: Problems, label: str) -> None:
    index = OutputIndex(stages)
    position = {name: i for i, name in enumerate(stages)}
    for stage in stages.values():
        for out in dict.fromkeys(stage.outs):
            for other_out, writer in index.overlapping(out):
                if position[writer] >= position[stage.name]:
                    continue
                first = stages[writer]
                relation = "also" if other_out == out else f"overlapping {other_out!r},"
                problems.add(
                    stage.line,
                    f"stages.{stage.name}.outs",
                    f"{out!r} is {relation} an output of stage {writer!r} "
                    f"({_where(first, label)}); each output needs exactly one writer",
                )


def _check_cycles(stages: Mapping[str, Stage], problems: Problems) -> None:
    upstream = upstream_map(stages)
    downstream: dict[str, list[str]] = {name: [] for name in stages}
    for name in stages:
        for up in sorted(upstream[name], key=list(stages).index):
            downstream[up].append(name)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for start in stages:
        if start in state:
            continue
        path: list[str] = [start]
        branches = [iter(downstream[start])]
        state[start] = 1
        while branches:
            nxt = next(branches[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                branches.pop()
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    _report_cycle(cycle, stages, problems)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                branches.append(iter(downstream[nxt]))


def _report_cycle(cycle: list[str], stages: Mapping[str, Stage], problems: Problems) -> None:
    names = list(stages)
    first = min(range(len(cycle)), key=lambda i: names.index(cycle[i]))
    cycle = cycle[first:] + cycle[:first]
    reasons = []
    for writer, reader in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        shared = next(
            (dep, out)
            for dep in stages[reader].deps
            for out, who in OutputIndex({writer: stages[writer]}).overlapping(dep)
            if who == writer
        )
        where = f"line {stages[reader].line}" if stages[reader].line else "no line"
        reasons.append(f"{reader} ({where}) depends on {shared[0]!r}, an output of {writer}")
    chain = " -> ".join([*cycle, cycle[0]])
    problems.add(stages[cycle[0]].line, "", f"stages form a cycle: {chain} ({'; '.join(reasons)})")
