"""The conformance vectors: the Python executor must reproduce the eager PyTorch reference run.

The JavaScript SDK runs the same vectors; see plans/conformance/README.md for the contract.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from fedgrid_plans import tensors
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.validation import validate_plan
from fedgrid_plans.zoo import ZOO_NAMES

CONFORMANCE = pathlib.Path(__file__).resolve().parents[1] / "conformance"
VECTORS = sorted(p.name for p in CONFORMANCE.iterdir() if (p / "vector.json").exists())


def test_every_zoo_model_has_a_vector_and_the_folder_stays_small():
    assert set(ZOO_NAMES) <= set(VECTORS)
    total = sum(f.stat().st_size for f in CONFORMANCE.rglob("*") if f.is_file())
    assert total < 25 * 1024 * 1024


@pytest.mark.parametrize("vector", VECTORS)
def test_python_executor_matches_the_reference_run(vector):
    folder = CONFORMANCE / vector
    spec = json.loads((folder / "vector.json").read_text())
    start = tensors.decode((folder / "start.safetensors").read_bytes())
    plan = validate_plan((folder / "plan.fgplan").read_bytes(), start)
    assert plan.content_hash == spec["plan_content_hash"]
    batches = tensors.decode((folder / "batches.safetensors").read_bytes())
    final = tensors.decode((folder / "final.safetensors").read_bytes())

    executor = PlanExecutor(plan)
    parameters = dict(start)
    state = executor.initial_optimizer_state()
    losses, accuracies = [], []
    for step in range(spec["steps"]):
        result = executor.step(
            parameters,
            batches[f"features/{step}"],
            batches[f"labels/{step}"],
            learning_rate=spec["learning_rate"],
            optimizer_state=state,
            global_parameters=start,
        )
        assert result.metrics["num_samples"] == spec["batch_sizes"][step]
        parameters, state = result.parameters, result.optimizer_state
        losses.append(result.loss)
        accuracies.append(result.metrics["accuracy"])

    np.testing.assert_allclose(losses, spec["expected_loss"], **spec["tolerance"]["loss"])
    np.testing.assert_allclose(accuracies, spec["expected_accuracy"], atol=1e-6)
    assert list(final) == list(start)
    for name, expected in final.items():
        np.testing.assert_allclose(parameters[name], expected, **spec["tolerance"]["parameters"])
        assert not np.array_equal(expected, start[name]) or name.endswith("bias")


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_vectors_are_current_with_the_compiler(zoo, name):
    """A stale vector (compiler changed, vectors not regenerated) fails here."""
    folder = CONFORMANCE / name
    assert json.loads((folder / "vector.json").read_text())["plan_content_hash"] == zoo[name].manifest["content_hash"]
    start = tensors.decode((folder / "start.safetensors").read_bytes())
    for parameter, value in zoo[name].checkpoint().items():
        np.testing.assert_array_equal(start[parameter], value)
