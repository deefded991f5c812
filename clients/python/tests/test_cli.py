"""The `fedgrid` command line against a real Node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedgrid import Admin
from fedgrid.cli import main
from fedgrid_plans import tensors
from fedgrid_server.testing import wait_for


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
    features, labels = digits
    # An evaluation set the plan cannot score (wrong feature width) refuses the hosting itself.
    np.savez(tmp_path / "wrong.npz", features=features[:20, :10], labels=labels[:20])
    assert main(["host", str(plan), "--checkpoint", str(checkpoint), "--name", "cli-model",
                 "--evaluation-set", str(tmp_path / "wrong.npz"), *node]) == 1
    assert "evaluation_set" in capsys.readouterr().err
    np.savez(tmp_path / "test.npz", features=features[-100:], labels=labels[-100:])
    assert main(["host", str(plan), "--checkpoint", str(checkpoint), "--name", "cli-model",
                 "--client-config", '{"batch_size": 10, "epochs": 1}',
                 "--server-config", '{"max_diffs": 1, "num_cycles": 2}',
                 "--evaluation-set", str(tmp_path / "test.npz"), *node]) == 0
    assert "hosted cli-model 1.0" in capsys.readouterr().out

    np.savez(tmp_path / "device.npz", features=features[:50], labels=labels[:50])
    assert main(["train", "cli-model", "--data", str(tmp_path / "device.npz"),
                 "--url", sdk_node.url]) == 0
    out = capsys.readouterr().out
    assert "cycle 1: reported 50 samples" in out and "cycle 2: reported 50 samples" in out
    assert "done: 2 report(s)" in out

    assert main(["status", *node]) == 0
    # The last cycle (2) trained on checkpoint 2 and made 3: status names both, as the dashboard
    # and the `checkpoints` event do, instead of calling 2 the checkpoint.
    assert ("cli-model 1.0: finished, cycle 2 completed on checkpoint 2, latest checkpoint 3"
            in capsys.readouterr().out)
    assert main(["checkpoints", "cli-model", *node]) == 0
    assert "latest checkpoint 3" in capsys.readouterr().out
    # Every checkpoint is scored on the set given at hosting (in the background).
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        wait_for(lambda: len(admin.checkpoints("cli-model")["checkpoints"]) == 3 and all(
            entry["test_metrics"] for entry in admin.cycles("cli-model")), timeout=60,
            what="the checkpoints to be scored")
    assert main(["cycles", "cli-model", *node]) == 0
    lines = capsys.readouterr().out.splitlines()
    # (The hosted checkpoint's own held-out score comes first: it was given an evaluation set.)
    assert lines[0].startswith("checkpoint 1 (hosted)  test acc")
    assert lines[1].startswith("cycle   1  completed") and "reports 1 of 1 accepted devices" in lines[1]

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


def _fedgrid(*args: str, stdout=subprocess.PIPE, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m fedgrid ...` as a person runs it, without a Node or token from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDGRID_", "GRID_"))}
    return subprocess.run([sys.executable, "-m", "fedgrid", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)


def test_a_misspelt_zoo_name_is_one_line_with_a_suggestion(sdk_node):
    finished = _fedgrid("host", "digits_mpl", "--url", sdk_node.url,
                        "--admin-token", sdk_node.admin_token)
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        "fedgrid: no zoo model 'digits_mpl' (known: logistic_regression, digits_mlp, digits_cnn, "
        "pygrid_mlp, mcmahan_2nn, mcmahan_cnn) and no file digits_mpl; did you mean digits_mlp?"
    ]


def test_a_misspelt_plan_path_is_one_line_naming_the_file_beside_it(sdk_node, plan_files):
    plan, checkpoint = plan_files
    typo = plan.with_name("digits_mpl.fgplan")
    finished = _fedgrid("host", str(typo), "--checkpoint", str(checkpoint), "--url", sdk_node.url,
                        "--admin-token", sdk_node.admin_token)
    assert finished.returncode == 1
    [line] = finished.stderr.splitlines()
    assert line.startswith(f"fedgrid: no file {typo}; did you mean {plan}?")
    assert "Traceback" not in finished.stderr


def test_debug_shows_the_traceback(sdk_node):
    finished = _fedgrid("--debug", "host", "digits_mpl", "--url", sdk_node.url,
                        "--admin-token", sdk_node.admin_token)
    assert finished.returncode == 1
    assert "Traceback (most recent call last)" in finished.stderr
    assert "UnknownModel: no zoo model 'digits_mpl'" in finished.stderr
    after = _fedgrid("host", "digits_mpl", "--debug", "--url", sdk_node.url, "--admin-token", "x")
    assert "Traceback (most recent call last)" in after.stderr


def test_version_comes_from_the_package_metadata():
    from importlib import metadata

    finished = _fedgrid("--version")
    assert finished.returncode == 0
    assert finished.stdout == f"fedgrid {metadata.version('fedgrid')}\n"


def test_output_into_a_closed_pipe_ends_quietly(sdk_node, host):
    for _ in range(3):
        host()
    reader, writer = os.pipe()
    os.close(reader)  # `| head` that has already read its lines and gone
    try:
        finished = _fedgrid("status", "--url", sdk_node.url, "--admin-token", sdk_node.admin_token,
                            stdout=writer)
    finally:
        os.close(writer)
    assert finished.stderr == ""
    assert finished.returncode != 0  # the output was cut short, as with other tools


def test_hosting_a_zoo_model_says_what_it_is_doing(sdk_node):
    name = "cli-progress"
    finished = _fedgrid("host", "logistic_regression", "--name", name, "--url", sdk_node.url,
                        "--admin-token", sdk_node.admin_token, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr.splitlines() == [
        "compiling logistic_regression (needs torch)…",
        f"hosting {name} 1.0 on {sdk_node.url}…",
    ]
    assert finished.stdout.startswith(f"hosted {name} 1.0: process ")


def test_admin_refuses_a_missing_plan_path_in_one_clear_error(sdk_node):
    from fedgrid import Admin

    # A str path that does not exist used to be looked up in the zoo (a KeyError).
    with Admin(sdk_node.url, sdk_node.admin_token) as admin, \
            pytest.raises(ValueError, match=r"^no file missing/x\.fgplan \(nor a zoo model: "):
        admin.host_training("missing/x.fgplan", "x", checkpoint=b"")


@pytest.mark.parametrize(("features", "labels", "message"), [
    (np.zeros((20, 8, 8), np.float32), np.zeros(20, np.int64),
     "expects features shaped (n, 64), got (20, 8, 8) (reshape them with "
     ".reshape(len(features), 64))"),
    (np.zeros((20, 64), np.float32), np.full(20, 10, np.int64),
     "has 10 classes: labels must be 0..9, found 10 (20 of 20 labels)"),
])
def test_train_names_the_expected_data_in_one_line(sdk_node, host, tmp_path, features, labels,
                                                   message):
    name = host()
    np.savez(tmp_path / "device.npz", features=features, labels=labels)
    finished = _fedgrid("train", name, "--data", str(tmp_path / "device.npz"), "--url", sdk_node.url)
    assert finished.returncode == 1
    [line] = finished.stderr.splitlines()
    assert line.startswith("fedgrid: ") and message in line


def _plans_doc_snippet() -> str:
    page = (Path(__file__).resolve().parents[3] / "docs" / "plans.md").read_text()
    section = page[page.index("## Write a plan file and its checkpoint"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("```\n", 10)]


def test_the_documented_checkpoint_file_snippet_hosts_with_the_cli(sdk_node, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_plans_doc_snippet(), "docs/plans.md", "exec"), {})
    for number, checkpoint in enumerate(("digits.safetensors", "pretrained.safetensors")):
        finished = _fedgrid("host", "digits.fgplan", "--checkpoint", checkpoint, "--name",
                            f"documented-{number}", "--url", sdk_node.url,
                            "--admin-token", sdk_node.admin_token)
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.startswith(f"hosted documented-{number} 1.0: process ")
