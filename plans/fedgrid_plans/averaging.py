"""The averaging plan: PyGrid's iterative mean ``avg_plan(avg, item, num)`` as an ONNX graph.

PyGrid let a researcher host an averaging plan that the Node folds diffs with, one at a time:
``avg = diffs[0]; avg = avg_plan(avg, diffs[i], num=i)`` for ``i = 1, 2, ...``, which is the
running mean ``avg + (item - avg) / (num + 1)``. Fedgrid keeps that form for parity (the Node's
own strategies do weighted averaging natively). The graph is built with ``onnx.helper`` and run
with ONNX's numpy reference evaluator, so neither building nor running it needs torch or
onnxruntime: a Node can use it as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from fedgrid_plans import manifest as names
from fedgrid_plans.op_allowlist import OPSET_VERSION


def average_input(name: str) -> str:
    return f"average/{name}"


def item_input(name: str) -> str:
    return f"item/{name}"


def updated_average_output(name: str) -> str:
    return f"updated/average/{name}"


def build_averaging_graph(parameters: Sequence[Mapping]) -> tuple[bytes, dict]:
    """The ONNX graph and its manifest section for parameters ``[{"name", "dtype", "shape"}]``.

    Inputs: ``average/<p>``, ``item/<p>`` per parameter and ``count`` (float32 scalar: how many
    items the average already holds). Outputs: ``updated/average/<p> = avg + (item - avg) / (count + 1)``.
    """
    nodes = [
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Add", ["count", "one"], ["count_plus_one"]),
    ]
    inputs, outputs = [], []
    section_inputs, section_outputs = [], []
    for index, spec in enumerate(parameters):
        name, shape = spec["name"], list(spec["shape"])
        avg, item, out = average_input(name), item_input(name), updated_average_output(name)
        inputs += [
            helper.make_tensor_value_info(avg, TensorProto.FLOAT, shape),
            helper.make_tensor_value_info(item, TensorProto.FLOAT, shape),
        ]
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, shape))
        nodes += [
            helper.make_node("Sub", [item, avg], [f"delta_{index}"]),
            helper.make_node("Div", [f"delta_{index}", "count_plus_one"], [f"step_{index}"]),
            helper.make_node("Add", [avg, f"step_{index}"], [out]),
        ]
        section_inputs += [
            names.io_entry(avg, names.AVERAGE, "float32", shape, parameter=name),
            names.io_entry(item, names.ITEM, "float32", shape, parameter=name),
        ]
        section_outputs.append(names.io_entry(out, names.UPDATED_AVERAGE, "float32", shape, parameter=name))
    inputs.append(helper.make_tensor_value_info("count", TensorProto.FLOAT, []))
    section_inputs.append(names.io_entry("count", names.COUNT, "float32", []))
    graph = helper.make_graph(nodes, "fedgrid_average", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET_VERSION)], producer_name="fedgrid_plans"
    )
    model.ir_version = 8  # readable by every ONNX Runtime from 1.14 on
    onnx.checker.check_model(model)
    return model.SerializeToString(), {"inputs": section_inputs, "outputs": section_outputs}


def validate_averaging_graph(graph: bytes, parameters: Sequence[Mapping]) -> None:
    """Check a stand-alone averaging graph (hosted apart from a training plan, as PyGrid allowed):
    well-formed ONNX, arithmetic ops only, inputs/outputs as :func:`build_averaging_graph` names
    them for ``parameters``. Raises :class:`fedgrid_plans.validation.PlanValidationError`."""
    from fedgrid_plans import validation

    model = validation._load_graph("average", graph)
    validation._check_ops("average", model)
    _, section = build_averaging_graph(parameters)
    manifest = {"average": section}
    validation._check_io("average", model, manifest, {p["name"]: dict(p) for p in parameters})


class AveragingPlan:
    """Runs an averaging graph with ONNX's reference evaluator (numpy only)."""

    def __init__(self, graph: bytes, parameter_names: Sequence[str]):
        from onnx.reference import ReferenceEvaluator

        self.parameter_names = list(parameter_names)
        self._evaluator = ReferenceEvaluator(onnx.load_from_string(graph))

    @classmethod
    def from_plan(cls, plan) -> AveragingPlan:
        """The averaging graph embedded in a training plan (``plan.graphs["average"]``)."""
        if "average" not in plan.graphs:
            raise ValueError("this plan has no averaging graph")
        return cls(plan.graphs["average"], [p["name"] for p in plan.manifest["parameters"]])

    def step(self, average: Mapping[str, np.ndarray], item: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
        """One fold: the mean of ``count`` items in ``average`` and one more ``item``."""
        feeds = {"count": np.asarray(count, dtype=np.float32)}
        for name in self.parameter_names:
            feeds[average_input(name)] = np.asarray(average[name], dtype=np.float32)
            feeds[item_input(name)] = np.asarray(item[name], dtype=np.float32)
        results = self._evaluator.run([updated_average_output(n) for n in self.parameter_names], feeds)
        return dict(zip(self.parameter_names, results, strict=True))

    def average(self, items: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """PyGrid's loop: start from the first item, fold in the rest with ``num = 1, 2, ...``."""
        iterator = iter(items)
        try:
            first = next(iterator)
        except StopIteration:
            raise ValueError("cannot average zero items") from None
        average = {n: np.array(first[n], dtype=np.float32) for n in self.parameter_names}
        for count, item in enumerate(iterator, start=1):
            average = self.step(average, item, count)
        return average
