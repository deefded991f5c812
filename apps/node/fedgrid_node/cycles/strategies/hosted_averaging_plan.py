"""PyGrid's hosted averaging plan, for parity with PyGrid processes.

PyGrid let the researcher host an "averaging plan" ``avg_plan(avg, item, num)`` and folded the
cycle's diffs through it one at a time: ``avg = diffs[0]``, then ``avg = avg_plan(avg, diffs[i], i)``
— an *unweighted* running mean unless the plan says otherwise — and subtracted the result from
the model. Fedgrid runs the plan's ``average`` graph (ONNX, see plans/SPEC.md) the same way over
the cycle's stored diffs, streamed one at a time from the database, in acknowledgement order.
Prefer the built-in strategies: they weight by num_samples (McMahan et al. 2017).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .base import Strategy, Tensors, check_positive


class HostedAveragingPlan(Strategy):
    # The engine hands this strategy the cycle's stored diffs instead of the weighted sum.
    uses_hosted_plan = True

    def __init__(self, server_learning_rate: float = 1.0) -> None:
        self.server_learning_rate = check_positive("server_learning_rate", server_learning_rate)

    @staticmethod
    def average(plan_file: bytes, diffs: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        from fedgrid_plans.averaging import AveragingPlan
        from fedgrid_plans.plan_file import Plan

        plan = Plan.from_bytes(plan_file)
        names = [p["name"] for p in plan.manifest["parameters"]]
        return AveragingPlan(plan.graphs["average"], names).average(diffs)

    def step(self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]):
        new_params = {
            name: (value - self.server_learning_rate * average_diff[name]).astype(value.dtype)
            for name, value in params.items()
        }
        return new_params, state
