"""The model plans of a run: what each model is and how the run treats it, resolved once."""

from benchmark.plan.model_plan import (
    Kind,
    ModelPlan,
    expand_components,
    resolve_plan,
    resolve_plans,
)
from benchmark.plan.weights import takes_weights_file

__all__ = [
    "Kind",
    "ModelPlan",
    "expand_components",
    "resolve_plan",
    "resolve_plans",
    "takes_weights_file",
]
