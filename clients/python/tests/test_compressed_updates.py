"""Compressed updates from the Python SDK: the encoding rule (held to the shared vector the
JavaScript SDK is held to), a fleet that learns digits as well with float16 and int8 diffs as
with float32 on a real Node (both database backends), and the Node's refusal of another
encoding."""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid import Admin, Client, ReportRefused
from fedgrid.diff_encoding import encode_diff, int8_quantize
from fedgrid.simulate import simulate
from fedgrid_plans import tensors

from .diff_encoding_vector import ENCODED, VECTOR, vector_diff

CYCLES = 8
# Digits' test split has 360 examples: 0.03 is 11 of them. The compressed runs differ from the
# float32 run by a few hundredths of a percent of each update (measured: identical accuracies
# to 4 decimals over 6 cycles), so a real loss of learning shows far beyond this margin.
ACCURACY_MARGIN = 0.03


def test_the_shared_vector_is_what_this_sdk_writes():
    diff = vector_diff()
    assert (VECTOR / "diff.safetensors").read_bytes() == tensors.encode(diff)
    for encoding in ENCODED:
        assert (VECTOR / f"{encoding}.safetensors").read_bytes() == encode_diff(diff, encoding), (
            f"{encoding}: run `python -m tests.diff_encoding_vector` only if the rule changed")


def test_int8_rule_ties_to_even_zero_scale_and_non_finite_diffs():
    codes, scale = int8_quantize(np.array([127, 0.5, 1.5, 2.5, -0.5, -2.5, -126.5], np.float32))
    assert scale == np.float32(1) and codes.tolist() == [127, 0, 2, 2, 0, -2, -126]
    codes, scale = int8_quantize(np.zeros((2, 2), np.float32))
    assert scale == 0 and codes.dtype == np.int8 and not codes.any()
    # max|x| maps to ±127 exactly; every element within s/2 of its decoding.
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    codes, scale = int8_quantize(x)
    assert np.abs(codes).max() == 127
    assert np.all(np.abs(codes * np.float64(scale) - x) <= scale / 2 * (1 + 2.0**-20))
    # A non-finite diff has no scale: NaN or infinity is sent, for the Node to refuse.
    for bad in (np.nan, np.inf):
        codes, scale = int8_quantize(np.array([1, bad], np.float32))
        assert not np.isfinite(scale) and not codes.any()


def test_float32_stays_the_default_and_unknown_encodings_are_refused_locally():
    diff = {"w": np.arange(4, dtype=np.float64)}
    assert encode_diff(diff) == encode_diff(diff, "float32") == tensors.encode(
        {"w": np.arange(4, dtype=np.float32)})
    with pytest.raises(ValueError, match="update the fedgrid package"):
        encode_diff(diff, "int4")


def test_a_fleet_learns_digits_as_well_with_float16_and_int8_diffs(shared_node, compiled_mlp):
    accuracy = {}
    for encoding in ("float32", "float16", "int8"):
        result = simulate(
            shared_node.url, shared_node.admin_token, model=compiled_mlp, devices=20,
            per_cycle=5, cycles=CYCLES, split="iid", epochs=5, batch_size=10, processes=0,
            seed=0, diff_encoding=encoding)
        assert [r.reports for r in result.records] == [5] * CYCLES, encoding
        accuracy[encoding] = result.final_test_accuracy
    assert accuracy["float32"] >= 0.85, accuracy  # learning happened: the comparison means something
    for encoding in ("float16", "int8"):
        assert abs(accuracy[encoding] - accuracy["float32"]) <= ACCURACY_MARGIN, accuracy


def test_the_sdk_follows_the_models_encoding_and_the_node_refuses_another(
        shared_node, compiled_mlp, digits):
    name = f"int8-model-{shared_node.backend}"
    with Admin(shared_node.url, shared_node.admin_token) as admin:
        admin.host_training(compiled_mlp, name, "1.0",
                            client_config={"batch_size": 16, "epochs": 1, "diff_encoding": "int8"},
                            server_config={"max_diffs": 1, "min_diffs": 1, "max_workers": 1})
    with Client(shared_node.url) as client:
        assignment = client.new_job(name, "1.0").request()
        assert assignment.client_config["diff_encoding"] == "int8"
        result = assignment.train(digits, max_updates=3, seed=0, progress=False)
        float32_bytes = tensors.encode({k: np.asarray(v, np.float32) for k, v in result.diff.items()})
        with pytest.raises(ReportRefused) as refused:
            assignment.report(diff=float32_bytes, num_samples=result.num_samples)
        assert refused.value.code == "diff_encoding_mismatch"
        assert assignment.report(result)["status"] == "success"
    with Admin(shared_node.url, shared_node.admin_token) as admin:
        start = admin.retrieve_model(name, "1.0", checkpoint=1)
        after = admin.retrieve_model(name, "1.0", checkpoint=2)
    for key, value in start.items():
        codes, scale = int8_quantize(result.diff[key])
        np.testing.assert_allclose(after[key], value - codes * scale, rtol=0, atol=1e-7)


def test_fedgrid_simulate_takes_the_encoding(sdk_node, compiled_mlp, tmp_path, capsys):
    from fedgrid.cli import main

    plan, start = tmp_path / "mlp.fgplan", tmp_path / "start.safetensors"
    plan.write_bytes(compiled_mlp.to_bytes())
    start.write_bytes(tensors.encode(compiled_mlp.checkpoint()))
    assert main(["simulate", "--url", sdk_node.url, "--admin-token", sdk_node.admin_token,
                 "--model", str(plan), "--checkpoint", str(start), "--devices", "4",
                 "--per-cycle", "2", "--cycles", "1", "--epochs", "1", "--processes", "0",
                 "--diff-encoding", "float16"]) == 0
    assert "reports 2" in capsys.readouterr().out
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        encodings = [p["client_config"].get("diff_encoding") for p in admin.processes()]
    assert "float16" in encodings
    assert main(["simulate", "--diff-encoding", "int4"]) == 2  # argparse's usage error
    assert "invalid choice: 'int4'" in capsys.readouterr().err
