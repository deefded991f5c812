"""PyGrid's hosted averaging plan, for parity with PyGrid processes.

PyGrid let the researcher host an "averaging plan" ``avg_plan(avg, item, num)`` and folded the
cycle's diffs through it one at a time: ``avg = diffs[0]``, then ``avg = avg_plan(avg, diffs[i], i)``
— an *unweighted* running mean unless the plan says otherwise — and subtracted the result from
the model. Fedgrid runs the plan's ``average`` graph (ONNX, see plans/SPEC.md) the same way over
the cycle's stored diffs, streamed one at a time from the database, in acknowledgement order.
Prefer the built-in strategies: they weight by num_samples (McMahan et al. 2017).
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, Tensors, check_positive


class HostedAveragingPlan(Strategy):
    # The engine hands this strategy the cycle's stored diffs instead of the weighted sum.
    uses_hosted_plan = True

    def __init__(self, server_learning_rate: float = 1.0) -> None:
        self.server_learning_rate = check_positive("server_learning_rate", server_learning_rate)

    @staticmethod
    def averager(plan_file: bytes) -> PlanAverager:
        return PlanAverager(plan_file)

    def step(self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]):
        new_params = {
            name: (value - self.server_learning_rate * average_diff[name]).astype(value.dtype)
            for name, value in params.items()
        }
        return new_params, state


class PlanAverager:
    """PyGrid's loop over the hosted plan: ``avg = first(d0)``, then ``avg = step(avg, d_i, i)``."""

    def __init__(self, plan_file: bytes) -> None:
        from fedgrid_plans.averaging import AveragingPlan
        from fedgrid_plans.plan_file import Plan

        plan = Plan.from_bytes(plan_file)
        self.names = [p["name"] for p in plan.manifest["parameters"]]
        self._plan = AveragingPlan(plan.graphs["average"], self.names)

    def first(self, item: Tensors) -> dict[str, np.ndarray]:
        return {name: np.array(item[name], dtype=np.float32) for name in self.names}

    def step(self, average: Tensors, item: Tensors, count: int) -> dict[str, np.ndarray]:
        return self._plan.step(average, item, count)
