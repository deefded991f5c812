"""The `fedgrid` command line against a real Node."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fedgrid.cli import main
from fedgrid_plans import tensors


@pytest.fixture(scope="module")
def plan_files(tmp_path_factory, compiled_mlp):
    folder = tmp_path_factory.mktemp("plan-files")
    (folder / "digits_mlp.fgplan").write_bytes(compiled_mlp.to_bytes())
    (folder / "digits_mlp.safetensors").write_bytes(tensors.encode(compiled_mlp.checkpoint()))
    return folder / "digits_mlp.fgplan", folder / "digits_mlp.safetensors"


def test_host_status_train_checkpoints_cycles_download(sdk_node, plan_files, digits, tmp_path,
                                                       capsys):
    plan, checkpoint = plan_files
    node = ["--url", sdk_node.url, "--admin-token", sdk_node.admin_token]
    assert main(["host", str(plan), "--checkpoint", str(checkpoint), "--name", "cli-model",
                 "--client-config", '{"batch_size": 10, "epochs": 1}',
                 "--server-config", '{"max_diffs": 1, "num_cycles": 2}', *node]) == 0
    assert "hosted cli-model 1.0" in capsys.readouterr().out

    features, labels = digits
    np.savez(tmp_path / "device.npz", features=features[:50], labels=labels[:50])
    assert main(["train", "cli-model", "--data", str(tmp_path / "device.npz"),
                 "--url", sdk_node.url]) == 0
    out = capsys.readouterr().out
    assert "cycle 1: reported 50 samples" in out and "cycle 2: reported 50 samples" in out
    assert "done: 2 report(s)" in out

    assert main(["status", *node]) == 0
    assert "cli-model 1.0: finished" in capsys.readouterr().out
    assert main(["checkpoints", "cli-model", *node]) == 0
    assert "latest checkpoint 3" in capsys.readouterr().out
    assert main(["cycles", "cli-model", *node]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cycle   1  completed") and "reported 1/1" in lines[0]

    target = tmp_path / "model.safetensors"
    assert main(["download", "cli-model", "--checkpoint", "2", "-o", str(target), *node]) == 0
    assert set(tensors.decode(target.read_bytes())) == set(tensors.decode(checkpoint.read_bytes()))


def test_errors_are_one_line_without_a_traceback(sdk_node, capsys):
    assert main(["checkpoints", "no-such-model", "--url", sdk_node.url,
                 "--admin-token", sdk_node.admin_token]) == 1
    err = capsys.readouterr().err
    assert "no hosted model named no-such-model" in err and "Traceback" not in err
    assert main(["status", "--url", sdk_node.url, "--admin-token", "wrong"]) == 1
    assert "admin_token_invalid" in capsys.readouterr().err


def test_simulate_end_to_end_in_separate_processes(sdk_node, plan_files):
    plan, checkpoint = plan_files
    env = {k: v for k, v in os.environ.items() if k not in ("FEDGRID_URL", "FEDGRID_ADMIN_TOKEN")}
    finished = subprocess.run(
        [sys.executable, "-m", "fedgrid", "simulate", "--url", sdk_node.url,
         "--admin-token", sdk_node.admin_token, "--model", str(plan), "--checkpoint",
         str(checkpoint), "--devices", "4", "--per-cycle", "2", "--cycles", "2",
         "--split", "noniid", "--epochs", "1", "--processes", "2"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    cycle_lines = [line for line in lines if line.startswith("cycle ")]
    assert len(cycle_lines) == 2
    assert all("reports 2" in line and "test acc" in line for line in cycle_lines)
    assert "after 2 cycles" in lines[-1]
    assert "Traceback" not in finished.stderr and "Warning" not in finished.stderr
