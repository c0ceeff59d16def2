"""The dependency graph of sources, models and tests: topological order, cycles, ancestors and descendants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CycleError(Exception):
    """The graph has a cycle; ``cycle`` lists it with the first node repeated at the end."""

    def __init__(self, cycle: list[str]):
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


class Graph:
    """A DAG given by each node's parents (nodes it depends on)."""

    def __init__(self, parents: Mapping[str, Iterable[str]]):
        self.parents: dict[str, list[str]] = {n: sorted(set(p)) for n, p in parents.items()}
        for deps in list(self.parents.values()):
            for dep in deps:
                self.parents.setdefault(dep, [])
        self.children: dict[str, list[str]] = {n: [] for n in self.parents}
        for node, deps in self.parents.items():
            for dep in deps:
                self.children[dep].append(node)
        for node in self.children:
            self.children[node].sort()

    @property
    def nodes(self) -> list[str]:
        """All nodes, sorted."""
        return sorted(self.parents)

    def find_cycle(self) -> list[str] | None:
        """One cycle as a path ``[a, b, ..., a]`` where each node depends on the next, or None."""
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            path.append(node)
            for dep in self.parents[node]:
                if state.get(dep) == 1:
                    return path[path.index(dep) :] + [dep]
                if dep not in state:
                    found = visit(dep)
                    if found:
                        return found
            path.pop()
            state[node] = 2
            return None

        for node in self.nodes:
            if node not in state:
                found = visit(node)
                if found:
                    return found
        return None

    def topological_order(self, subset: Iterable[str] | None = None) -> list[str]:
        """Nodes (of ``subset``, default all) with every parent before its children; ties by name."""
        cycle = self.find_cycle()
        if cycle:
            raise CycleError(cycle)
        wanted = set(self.parents if subset is None else subset)
        indegree = {n: len(self.parents[n]) for n in self.parents}
        ready = sorted(n for n, d in indegree.items() if d == 0)
        order: list[str] = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            for child in self.children[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
                    ready.sort()
        return [n for n in order if n in wanted]

    def ancestors(self, node: str, depth: int | None = None) -> set[str]:
        """Nodes ``node`` depends on, transitively (up to ``depth`` edges)."""
        return self._reach(node, self.parents, depth)

    def descendants(self, node: str, depth: int | None = None) -> set[str]:
        """Nodes depending on ``node``, transitively (up to ``depth`` edges)."""
        return self._reach(node, self.children, depth)

    @staticmethod
    def _reach(node: str, edges: Mapping[str, list[str]], depth: int | None) -> set[str]:
        seen: set[str] = set()
        frontier = [node]
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            next_frontier = []
            for current in frontier:
                for other in edges.get(current, []):
                    if other not in seen:
                        seen.add(other)
                        next_frontier.append(other)
            frontier = next_frontier
        seen.discard(node)
        return seen
