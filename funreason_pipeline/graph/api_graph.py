"""The graph as the sampler sees it: prerequisites, legality (paper Eq. 1) and distances."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property

import networkx as nx

from funreason_pipeline.matching.names import error_words
from funreason_pipeline.models import Edge, ToolSpec


class ApiGraph:
    def __init__(self, tools: Iterable[ToolSpec], edges: Iterable[Edge]):
        self.tools = {t.name: t for t in tools}
        self.edges = list(edges)
        self.g = nx.DiGraph()
        self.g.add_nodes_from(self.tools)
        # the core graph leaves out "text sink" edges (any text can feed a message): steering by them
        # would route every turn through unrelated producers of text
        self.core = nx.DiGraph()
        self.core.add_nodes_from(self.tools)
        for e in self.edges:
            if e.src_tool in self.tools and e.dst_tool in self.tools:
                self.g.add_edge(e.src_tool, e.dst_tool)
                if '"text sink"' not in e.evidence:
                    self.core.add_edge(e.src_tool, e.dst_tool)
        self._dist: dict[str, dict[str, int]] = {}

    @cached_property
    def state_prereqs(self) -> dict[str, set[str]]:
        """Tool -> the tools whose state it needs. Toggles that need each other (login needs logout
        when a scenario starts logged in, logout needs login when it starts logged out) are no
        prerequisites of each other: as such neither could ever be called first. Which one a state
        needs shows in its error ("Already logged in"), which the sampler's repairs read."""
        state = {(e.src_tool, e.dst_tool) for e in self.edges if e.kind == "state"}
        out: dict[str, set[str]] = defaultdict(set)
        for src, dst in state:
            if (dst, src) not in state:
                out[dst].add(src)
        return out

    @cached_property
    def fixer_words(self) -> dict[str, set[str]]:
        """Tool -> the specific words of the errors its call cured in probing (state edges' fresh
        errors: login cured "not logged in"), so an error naming a state finds the tool that changes it."""
        out: dict[str, set[str]] = defaultdict(set)
        for e in self.edges:
            if e.kind == "state" and '"fresh_error"' in e.evidence:
                out[e.src_tool] |= error_words(json.loads(e.evidence).get("fresh_error"))
        return out

    @cached_property
    def enabling_args(self) -> dict[tuple[str, str], dict]:
        """(A, B) -> the arguments with which A made B work in probing (lock *all* doors, press the
        pedal fully): a sampler steering toward B tries them first."""
        out: dict[tuple[str, str], dict] = {}
        for e in self.edges:
            if e.kind == "state" and '"a_args"' in e.evidence:
                a_args = json.loads(e.evidence).get("a_args", {}).get(e.src_tool)
                if isinstance(a_args, dict):
                    out[(e.src_tool, e.dst_tool)] = a_args
        return out

    @cached_property
    def proven_rows(self) -> dict[str, set[tuple]]:
        """Tool -> the row assignments of the state ("row", where, ((param, field), ...)) whose
        arguments made it work in probing (an email with its password out of `accounts`)."""
        out: dict[str, set[tuple]] = defaultdict(set)
        for e in self.edges:
            if '"a_rows"' in e.evidence:
                for tool, (where, pairs) in json.loads(e.evidence)["a_rows"].items():
                    out[tool].add(("row", where, tuple(tuple(p) for p in pairs)))
        return dict(out)

    def enabling_for(self, tool: str, target: str) -> dict | None:
        """Probe-proven arguments of `tool` for the target or for one of the target's (transitive)
        state prerequisites: locking all doors serves startEngine, and so setCruiseControl."""
        seen, todo = set(), [target]
        while todo:
            node = todo.pop()
            if (tool, node) in self.enabling_args:
                return self.enabling_args[(tool, node)]
            for p in sorted(self.state_prereqs.get(node, ())):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return None

    @cached_property
    def data_sources(self) -> dict[tuple[str, str], set[str]]:
        """(tool, parameter) -> tools whose output can feed it."""
        out: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in self.edges:
            if e.kind == "data" and e.param:
                out[(e.dst_tool, e.param)].add(e.src_tool)
        return out

    @cached_property
    def data_fields(self) -> dict[tuple[str, str], set[tuple[str, str]]]:
        """(tool, parameter) -> {(producer, response field)}."""
        out: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for e in self.edges:
            if e.kind == "data" and e.param and e.src_field:
                out[(e.dst_tool, e.param)].add((e.src_tool, e.src_field))
        return out

    @cached_property
    def required_data_sources(self) -> dict[str, list[set[str]]]:
        """Per tool, one any-of group per required parameter that some tool can produce.

        Free text (a message, a tweet) can always come from the user, so "text sink" edges feed
        arguments but do not gate legality.
        """
        gating: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in self.edges:
            if e.kind == "data" and e.param and '"text sink"' not in e.evidence:
                gating[(e.dst_tool, e.param)].add(e.src_tool)
        out: dict[str, list[set[str]]] = defaultdict(list)
        for name, spec in self.tools.items():
            for p in spec.required:
                srcs = gating.get((name, p))
                if srcs:
                    out[name].append(srcs)
        return out

    def prerequisite_count(self, tool: str) -> int:
        return len(self.state_prereqs.get(tool, ())) + len(self.required_data_sources.get(tool, ()))

    def is_legal(self, tool: str, called: set[str], strict: bool = True) -> bool:
        """Eq. 1: every state prerequisite called; strictly also one producer per data-fed parameter."""
        if not self.state_prereqs.get(tool, set()) <= called:
            return False
        if strict:
            return all(group & called for group in self.required_data_sources.get(tool, ()))
        return True

    def distances_to(self, target: str) -> dict[str, int]:
        """Graph distance from every tool to `target` (tools that cannot reach it are absent)."""
        if target not in self._dist:
            core = nx.single_source_shortest_path_length(self.core.reverse(copy=False), target)
            full = nx.single_source_shortest_path_length(self.g.reverse(copy=False), target)
            self._dist[target] = {t: core.get(t, 100 + d) for t, d in full.items()}
        return self._dist[target]

    def edge_counts(self) -> dict[str, int]:
        counts = {"data": 0, "state": 0}
        for e in self.edges:
            counts[e.kind] += 1
        return counts

    def to_mermaid(self, max_edges: int = 150) -> str:
        lines = ["graph LR"]
        ids = {name: f"n{i}" for i, name in enumerate(sorted(self.tools))}
        for name, nid in ids.items():
            lines.append(f'  {nid}["{name}"]')
        seen = set()
        for e in sorted(self.edges, key=lambda e: (e.kind != "state", e.src_tool, e.dst_tool)):
            if (e.src_tool, e.dst_tool) in seen or len(seen) >= max_edges:
                continue
            seen.add((e.src_tool, e.dst_tool))
            arrow = "==>" if e.kind == "state" else "-->"
            lines.append(f"  {ids[e.src_tool]} {arrow} {ids[e.dst_tool]}")
        if len({(e.src_tool, e.dst_tool) for e in self.edges}) > max_edges:
            lines.append(f"  %% truncated at {max_edges} edges")
        return "\n".join(lines)
