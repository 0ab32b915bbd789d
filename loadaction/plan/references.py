"""Checks that every name a template reads exists, before anything runs.

With StrictUndefined a misspelt `vars.evnt_id` would fail only when the
request is rendered, i.e. after setup has seeded data and load has started;
names written literally are checked here instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from loadaction.errors import PlanError, did_you_mean
from loadaction.plan.templates import ROOTS, Reference

_WHERE_DEFINED = {
    "vars": "define it under vars, with --var, or with a set or extract step",
    "secrets": "list it under secrets",
    "data": "declare it under data",
}
_WHAT = {"vars": "is not defined", "secrets": "is not declared", "data": "is not a data source"}


def check_references(references: Iterable[Reference], *, roots: Collection[str] = ROOTS,
                     vars: Collection[str], secrets: Collection[str],
                     data: Collection[str]) -> None:
    """Raise at the first reference to a name outside `roots` or to a var,
    secret or data source the plan does not define."""
    defined = {"vars": vars, "secrets": secrets, "data": data}
    for ref in references:
        if ref.name is None:
            if ref.root not in roots:
                hint = did_you_mean(ref.root, roots) or f"templates here can use {', '.join(roots)}"
                raise PlanError(f"unknown name '{ref.root}' in template", ref.source, hint)
            continue
        names = defined.get(ref.root)
        if names is not None and ref.name not in names:
            hint = did_you_mean(ref.name, names) or _WHERE_DEFINED[ref.root]
            raise PlanError(f"'{ref.root}.{ref.name}' {_WHAT[ref.root]}", ref.source, hint)
