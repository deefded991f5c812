"""validate_plan: what the Node runs on every hosted plan (numpy + onnx only)."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from fedgrid_plans.plan_file import Plan
from fedgrid_plans.validation import ERROR_CODES, PlanValidationError, validate_plan

CONFORMANCE = pathlib.Path(__file__).resolve().parents[1] / "conformance"


def _resealed(plan: Plan) -> bytes:
    """A tamperer who also recomputes the hashes: later checks must still catch the change."""
    return plan.sealed().to_bytes()


def _refusal(data: bytes, checkpoint=None) -> PlanValidationError:
    with pytest.raises(PlanValidationError) as caught:
        validate_plan(data, checkpoint)
    assert caught.value.code in ERROR_CODES
    return caught.value


def test_every_zoo_plan_validates_against_its_checkpoint(zoo):
    from fedgrid_plans.zoo import ZOO_NAMES

    for name in ZOO_NAMES:
        compiled = zoo[name]
        plan = validate_plan(compiled.to_bytes(), compiled.checkpoint())
        assert plan.name == name
        assert [p["name"] for p in plan.parameters] == list(compiled.checkpoint())


def test_validation_needs_neither_torch_nor_onnxruntime(logistic_plan_bytes, tmp_path):
    path = tmp_path / "plan.fgplan"
    path.write_bytes(logistic_plan_bytes)
    script = (
        "import sys, pathlib\n"
        "import fedgrid_plans\n"
        "from fedgrid_plans.validation import validate_plan\n"
        "from fedgrid_plans.averaging import AveragingPlan\n"
        "from fedgrid_plans.inspection import describe\n"
        f"plan = validate_plan(pathlib.Path({str(path)!r}).read_bytes())\n"
        "describe(plan)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_tampered_graph_bytes_are_a_hash_mismatch(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    graph = bytearray(plan.graphs["train"])
    graph[-5] ^= 0xFF
    plan.graphs["train"] = bytes(graph)
    error = _refusal(plan.to_bytes())
    assert error.code == "plan_hash_mismatch"
    assert "train" in error.message


def test_edited_content_hash_is_a_hash_mismatch(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    plan.manifest["content_hash"] = "sha256:" + "0" * 64
    assert _refusal(plan.to_bytes()).code == "plan_hash_mismatch"


def _with_train_graph(plan_bytes: bytes, edit) -> bytes:
    plan = Plan.from_bytes(plan_bytes)
    model = onnx.load_from_string(plan.graphs["train"])
    edit(model)
    plan.graphs["train"] = model.SerializeToString()
    return _resealed(plan)


def test_op_outside_the_allow_list_is_refused(logistic_plan_bytes):
    def swap_exp_for_sin(model):
        node = next(n for n in model.graph.node if n.op_type == "Exp")
        node.op_type = "Sin"

    error = _refusal(_with_train_graph(logistic_plan_bytes, swap_exp_for_sin))
    assert error.code == "plan_op_not_allowed"
    assert "Sin" in error.message


def test_custom_domain_op_is_refused(logistic_plan_bytes):
    def add_custom_op(model):
        model.opset_import.append(helper.make_opsetid("com.example.exfiltrate", 1))
        model.graph.node.append(helper.make_node("Upload", ["features"], ["sent"], domain="com.example.exfiltrate"))

    error = _refusal(_with_train_graph(logistic_plan_bytes, add_custom_op))
    assert error.code == "plan_op_not_allowed"
    assert "com.example.exfiltrate::Upload" in error.message


def test_garbage_graph_is_refused(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    plan.graphs["train"] = b"\x08\x07garbage that is not a protobuf"
    assert _refusal(_resealed(plan)).code == "plan_graph_invalid"


def test_manifest_shape_that_disagrees_with_the_graph_is_refused(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    entry = next(e for e in plan.manifest["train"]["inputs"] if e["role"] == "features")
    entry["shape"] = ["batch", 65]
    error = _refusal(_resealed(plan))
    assert error.code == "plan_io_mismatch"
    assert "features" in error.message


def test_parameter_shape_that_disagrees_with_the_graph_is_refused(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    plan.manifest["parameters"][0]["shape"] = [10, 65]
    error = _refusal(_resealed(plan))
    assert error.code == "plan_io_mismatch"
    assert "linear.weight" in error.message


def test_fixed_batch_dimension_is_refused(logistic_plan_bytes):
    def fix_batch(model):
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 32

    error = _refusal(_with_train_graph(logistic_plan_bytes, fix_batch))
    assert error.code == "plan_io_mismatch"
    assert "batch" in error.message


def test_missing_parameter_input_is_refused(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    plan.manifest["train"]["inputs"] = [e for e in plan.manifest["train"]["inputs"] if e["name"] != "param/linear.bias"]
    assert _refusal(_resealed(plan)).code == "plan_io_mismatch"


def test_checkpoint_mismatches_are_refused(zoo, logistic_plan_bytes):
    checkpoint = zoo["logistic_regression"].checkpoint()
    wrong_shape = {**checkpoint, "linear.weight": np.zeros((10, 63), np.float32)}
    error = _refusal(logistic_plan_bytes, wrong_shape)
    assert error.code == "plan_checkpoint_mismatch"
    assert "linear.weight" in error.message and "[10, 63]" in error.message
    wrong_dtype = {**checkpoint, "linear.bias": checkpoint["linear.bias"].astype(np.float64)}
    assert _refusal(logistic_plan_bytes, wrong_dtype).code == "plan_checkpoint_mismatch"
    missing = {"linear.weight": checkpoint["linear.weight"]}
    assert "linear.bias" in _refusal(logistic_plan_bytes, missing).message
    extra = {**checkpoint, "linear.extra": np.zeros(1, np.float32)}
    assert "linear.extra" in _refusal(logistic_plan_bytes, extra).message


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda m: m.update(format_version=2), "plan_version_unsupported"),
        (lambda m: m.update(format_version="1"), "plan_malformed"),
        (lambda m: m.update(format="something.else"), "plan_malformed"),
        (lambda m: m.pop("parameters"), "plan_malformed"),
        (lambda m: m.update(parameters=[]), "plan_malformed"),
        (lambda m: m["parameters"].append(copy.deepcopy(m["parameters"][0])), "plan_malformed"),
        (lambda m: m["parameters"][0].update(dtype="float64"), "plan_malformed"),
        (lambda m: m.pop("forward"), "plan_malformed"),
        (lambda m: m["train"].update(outputs="loss"), "plan_malformed"),
    ],
    ids=["future version", "version as text", "wrong format", "no parameters", "empty parameters",
         "duplicate parameter", "float64 parameter", "graph without section", "outputs not a list"],
)
def test_manifest_problems_are_refused_with_a_code(logistic_plan_bytes, edit, code):
    plan = Plan.from_bytes(logistic_plan_bytes)
    edit(plan.manifest)
    assert _refusal(_resealed(plan)).code == code


def test_not_a_plan_is_malformed():
    error = _refusal(b"\x00" * 4)
    assert error.code == "plan_malformed"
    assert isinstance(error, ValueError)
    assert str(error).startswith("plan_malformed: ")


def test_manifest_json_round_trips_through_the_file(logistic_plan_bytes):
    plan = validate_plan(logistic_plan_bytes)
    assert json.loads(json.dumps(plan.manifest)) == plan.manifest


def test_momentum_plan_must_declare_state_for_every_parameter():
    plan_bytes = (CONFORMANCE / "digits_mlp_momentum_fedprox" / "plan.fgplan").read_bytes()
    validate_plan(plan_bytes)
    plan = Plan.from_bytes(plan_bytes)
    plan.manifest["optimizer_state"] = plan.manifest["optimizer_state"][:-1]
    assert _refusal(_resealed(plan)).code == "plan_io_mismatch"
    plan = Plan.from_bytes(plan_bytes)
    entry = next(e for e in plan.manifest["train"]["outputs"] if e["role"] == "updated_optimizer_state")
    entry["role"] = "updated_parameter"
    assert _refusal(_resealed(plan)).code == "plan_io_mismatch"


def test_unknown_role_is_refused(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    plan.manifest["train"]["outputs"][1]["role"] = "exfiltrate"
    assert _refusal(_resealed(plan)).code == "plan_io_mismatch"


def _json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, (*prefix, index))


def test_no_manifest_edit_crashes_the_validator():
    """A Node answers every bad upload with a PlanValidationError, never an internal error."""
    import random

    base = Plan.from_bytes((CONFORMANCE / "digits_mlp_momentum_fedprox" / "plan.fgplan").read_bytes())
    paths = [p for p in _json_paths(base.manifest) if p]
    replacements = [None, 0, -1, 1.5, "x", "batch", [], {}, [1], ["batch"], {"a": 1}, True, "float32", "parameter"]
    rng = random.Random(0)
    refused = 0
    for _ in range(400):
        manifest = copy.deepcopy(base.manifest)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            parent = manifest
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if isinstance(parent, dict) and rng.random() < 0.2:
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = rng.choice(replacements)
            except (KeyError, IndexError, TypeError):
                continue
        try:
            data = Plan(manifest, base.graphs).sealed().to_bytes()
        except (AttributeError, TypeError):  # an edit that broke the "graphs" object itself
            data = Plan(manifest, base.graphs).to_bytes()
        try:
            validate_plan(data)
        except PlanValidationError as error:
            assert error.code in ERROR_CODES
            refused += 1
    assert refused > 300
