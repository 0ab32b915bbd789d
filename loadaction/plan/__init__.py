"""Plans: YAML files in, the validated immutable model (`model.Plan`) out."""

from loadaction.plan.loader import load_plan

__all__ = ["load_plan"]
