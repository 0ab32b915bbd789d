"""The plan file and its `include`s, merged into one document.

Included files are partial plans whose paths are relative to the file that
names them. Names must stay unique across files: silently letting one file
win would make a shared flow behave differently depending on include order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from loadaction.errors import PlanError, Source
from loadaction.plan.fields import check_keys, expect_map, expect_seq, expect_str
from loadaction.plan.source import Entry, Map, Node, ReadBudget, Seq, read_yaml

ROOT_KEYS = (
    "name", "target", "allowedHosts", "extends", "include", "secrets", "vars", "defaults", "data",
    "metrics", "thresholds", "regressions", "profiles", "setup", "teardown", "flows", "scenarios",
    "chaos", "probes",
)
PARTIAL_KEYS = ("include", "flows", "scenarios", "thresholds", "regressions", "metrics", "data",
                "vars", "secrets")

NAMED_SECTIONS = {
    "flows": "flow", "scenarios": "scenario", "metrics": "metric",
    "data": "data source", "vars": "var",
}


@dataclass
class PlanDocument:
    """Sections from every file; each entry keeps the file and line it came from."""

    root: Map
    named: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {section: {} for section in NAMED_SECTIONS})
    thresholds: list[tuple[str, Entry]] = field(default_factory=list)
    regressions: list[tuple[str, Entry]] = field(default_factory=list)
    secrets: list[Node] = field(default_factory=list)


MERGED_KEYS = ("include", "thresholds", "regressions", "secrets", *NAMED_SECTIONS)
"""Sections a plan that `extends` another adds to; its other top-level keys replace the base's."""


def read_plan(path: Path, display: str | None = None,
              chain: tuple[tuple[Path, str], ...] = (), cited_at: Source | None = None,
              budget: ReadBudget | None = None) -> PlanDocument:
    """The plan at `path` with its base (`extends`) and includes merged; all
    files together stay within one read budget (size, values, aliases)."""
    display = display or str(path)
    budget = budget or ReadBudget()
    root = expect_map(read_yaml(path, display, cited_at, budget), "plan")
    check_keys(root, ROOT_KEYS, "at the top level")
    link = (path.resolve(), display)
    base_node = root.get("extends")
    if base_node is None:
        document = PlanDocument(root)
    else:
        document = _extend(root, base_node, (*chain, link), budget)
    _Merger(document, budget).merge(root, (link,))
    return document


def _extend(root: Map, base_node: Node, chain: tuple[tuple[Path, str], ...],
            budget: ReadBudget) -> PlanDocument:
    """`extends: base.yml`: the base plan with this file's top-level keys over it
    and its named sections, thresholds and secrets added (names stay unique)."""
    real, display = chain[-1]
    relative = expect_str(base_node, "extends")
    base_real = (real.parent / relative).resolve()
    base_display = os.path.normpath(os.path.join(os.path.dirname(display), relative))
    if base_real in [link[0] for link in chain]:
        names = " -> ".join((*(link[1] for link in chain), base_display))
        raise PlanError(f"extends cycle: {names}", base_node.source)
    base = read_plan(base_real, base_display, chain, base_node.source, budget)
    entries = {k: e for k, e in base.root.entries.items() if k not in ("extends", *MERGED_KEYS)}
    entries.update({k: e for k, e in root.entries.items() if k not in ("extends", *MERGED_KEYS)})
    return PlanDocument(Map(entries, root.source), named=base.named,
                        thresholds=base.thresholds, regressions=base.regressions,
                        secrets=base.secrets)


class _Merger:
    """Depth-first over includes; `chain` is the (real path, shown name) of
    each file from the root down to the one being merged."""

    def __init__(self, document: PlanDocument, budget: ReadBudget):
        self.document = document
        self.budget = budget
        self.loaded: set[Path] = set()

    def merge(self, node: Map, chain: tuple[tuple[Path, str], ...]) -> None:
        self.loaded.add(chain[-1][0])
        for section, kind in NAMED_SECTIONS.items():
            if section in node:
                self._merge_named(expect_map(node.get(section), section), section, kind)
        if "thresholds" in node:
            self.document.thresholds.extend(
                expect_map(node.get("thresholds"), "thresholds").items())
        if "regressions" in node:
            self.document.regressions.extend(
                expect_map(node.get("regressions"), "regressions").items())
        if "secrets" in node:
            self.document.secrets.extend(expect_seq(node.get("secrets"), "secrets").items)
        if "include" in node:
            self._include(expect_seq(node.get("include"), "include"), chain)

    def _merge_named(self, section: Map, name: str, kind: str) -> None:
        merged = self.document.named[name]
        for key, entry in section.items():
            earlier = merged.get(key)
            if earlier is not None:
                raise PlanError(f"{kind} '{key}' is already defined at {earlier.key_source}",
                                entry.key_source)
            merged[key] = entry

    def _include(self, items: Seq, chain: tuple[tuple[Path, str], ...]) -> None:
        real, display = chain[-1]
        for item in items.items:
            relative = expect_str(item, "include")
            child_real = (real.parent / relative).resolve()
            child_display = os.path.normpath(os.path.join(os.path.dirname(display), relative))
            reals = [link[0] for link in chain]
            if child_real in reals:
                names = [link[1] for link in chain[reals.index(child_real):]]
                cycle = " -> ".join((*names, child_display))
                raise PlanError(f"include cycle: {cycle}", item.source)
            if child_real in self.loaded:
                continue  # a diamond: the shared file is already merged
            child = expect_map(read_yaml(child_real, child_display, item.source, self.budget),
                               f"included file {child_display}")
            check_keys(child, PARTIAL_KEYS, f"in included file {child_display}")
            self.merge(child, (*chain, (child_real, child_display)))
