"""describe() and the command line."""

from __future__ import annotations

import subprocess
import sys

from fedgrid_plans import tensors
from fedgrid_plans.inspection import describe


def test_describe_lists_inputs_outputs_parameters_and_ops(zoo):
    compiled = zoo["digits_cnn"]
    description = describe(compiled.to_bytes())
    assert description.parameter_count == 6_090
    assert description.graphs["train"].ops["Conv"] >= 2
    assert "ConvTranspose" in description.graphs["train"].ops  # the decomposed convolution backward
    text = str(description)
    assert "parameters: 6,090 in 6 tensors" in text
    assert "features: float32['batch', 1, 8, 8] [features]" in text
    assert "updated/param/conv1.weight: float32[16, 1, 3, 3] [updated_parameter]" in text
    assert "graph 'forward'" in text and "graph 'average'" in text


def test_command_line_describes_and_validates(zoo, tmp_path):
    compiled = zoo["logistic_regression"]
    plan_path = tmp_path / "model.fgplan"
    plan_path.write_bytes(compiled.to_bytes())
    checkpoint_path = tmp_path / "checkpoint.safetensors"
    checkpoint_path.write_bytes(tensors.encode(compiled.checkpoint()))
    run = [sys.executable, "-m", "fedgrid_plans"]
    described = subprocess.run([*run, "describe", str(plan_path)], capture_output=True, text=True, check=True)
    assert "plan 'logistic_regression'" in described.stdout
    valid = subprocess.run([*run, "validate", str(plan_path), str(checkpoint_path)], capture_output=True, text=True, check=True)
    assert valid.stdout.startswith("valid: logistic_regression sha256:")
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(tensors.encode({"linear.weight": compiled.checkpoint()["linear.weight"]}))
    refused = subprocess.run([*run, "validate", str(plan_path), str(wrong)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "plan_checkpoint_mismatch" in refused.stderr
