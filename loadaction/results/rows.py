"""The rows of the results document that a run and a merge both write: a
threshold's verdict and a plan's regression budget definitions. One
definition here, so `loadaction merge` re-judges into exactly the shape
`loadaction run` writes (and reads the definitions back from it)."""

from __future__ import annotations

from typing import Any

from loadaction.errors import Source
from loadaction.metrics.verdict import ThresholdResult
from loadaction.plan.model import RegressionBudget


def source_row(source: Source) -> dict[str, Any]:
    return {"file": source.file, "line": source.line}


def threshold_row(result: ThresholdResult) -> dict[str, Any]:
    t = result.threshold
    return {
        "metric": t.selector,
        "expression": t.expr.text,
        "verdict": result.verdict.value,
        "observed": result.observed,
        "optional": t.optional,
        "abort_on_fail": t.abort_on_fail,
        "samples": result.samples,
        "min_samples": result.needed,
        "source": source_row(t.source),
    }


def budget_row(budget: RegressionBudget) -> dict[str, Any]:
    """A regression budget as the plan defines it (no verdict): what a merge
    of shards judges against baselines when the shards themselves had none."""
    return {"metric": budget.selector, "expression": budget.expr.text,
            "required": budget.required, "source": source_row(budget.source)}
