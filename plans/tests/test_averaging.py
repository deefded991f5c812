"""The averaging plan: PyGrid's iterative (avg, item, num) mean, built and run without torch."""

from __future__ import annotations

import numpy as np
import onnx

from fedgrid_plans.averaging import AveragingPlan, build_averaging_graph
from fedgrid_plans.plan_file import Plan
from fedgrid_plans.validation import PlanValidationError, validate_plan

PARAMETERS = [{"name": "w", "dtype": "float32", "shape": [3, 2]}, {"name": "b", "dtype": "float32", "shape": [2]}]


def test_iterative_average_equals_the_mean():
    graph, section = build_averaging_graph(PARAMETERS)
    rng = np.random.default_rng(0)
    items = [{"w": rng.standard_normal((3, 2)).astype(np.float32), "b": rng.standard_normal(2).astype(np.float32)} for _ in range(5)]
    average = AveragingPlan(graph, ["w", "b"]).average(items)
    for name in ("w", "b"):
        np.testing.assert_allclose(average[name], np.mean([i[name] for i in items], axis=0), rtol=1e-6, atol=1e-6)
    assert [e["role"] for e in section["inputs"]] == ["average", "item", "average", "item", "count"]


def test_one_fold_is_pygrids_formula():
    graph, _ = build_averaging_graph(PARAMETERS[1:])
    plan = AveragingPlan(graph, ["b"])
    result = plan.step({"b": np.array([2.0, 4.0], np.float32)}, {"b": np.array([6.0, 0.0], np.float32)}, count=3)
    # (avg * num + item) / (num + 1)
    np.testing.assert_allclose(result["b"], [(2 * 3 + 6) / 4, (4 * 3 + 0) / 4])


def test_averaging_graph_allows_arithmetic_only(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    model = onnx.load_from_string(plan.graphs["average"])
    next(n for n in model.graph.node if n.op_type == "Sub").op_type = "Max"  # allowed in training graphs
    plan.graphs["average"] = model.SerializeToString()
    try:
        validate_plan(plan.sealed().to_bytes())
    except PlanValidationError as error:
        assert error.code == "plan_op_not_allowed"
        assert "'average'" in error.message
    else:
        raise AssertionError("an averaging graph with Max was accepted")


def test_stand_alone_averaging_graph_is_validated():
    from fedgrid_plans.averaging import validate_averaging_graph

    graph, _ = build_averaging_graph(PARAMETERS)
    validate_averaging_graph(graph, PARAMETERS)
    wrong_shape = [{"name": "w", "dtype": "float32", "shape": [3, 3]}, PARAMETERS[1]]
    for parameters, code in ((wrong_shape, "plan_io_mismatch"), (PARAMETERS[:1], "plan_io_mismatch")):
        try:
            validate_averaging_graph(graph, parameters)
        except PlanValidationError as error:
            assert error.code == code
        else:
            raise AssertionError("a mismatched averaging graph was accepted")
    model = onnx.load_from_string(graph)
    model.graph.node[-1].op_type = "Mul"  # still arithmetic: allowed
    validate_averaging_graph(model.SerializeToString(), PARAMETERS)
    model.graph.node[-1].op_type = "Pow"
    try:
        validate_averaging_graph(model.SerializeToString(), PARAMETERS)
    except PlanValidationError as error:
        assert error.code == "plan_op_not_allowed"
    else:
        raise AssertionError("Pow in an averaging graph was accepted")


def test_averaging_plan_from_a_training_plan(zoo, logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    averaging = AveragingPlan.from_plan(plan)
    checkpoint = zoo["logistic_regression"].checkpoint()
    items = [{n: v * k for n, v in checkpoint.items()} for k in (1.0, 2.0, 6.0)]
    np.testing.assert_allclose(averaging.average(items)["linear.weight"], 3.0 * checkpoint["linear.weight"], rtol=1e-6)
