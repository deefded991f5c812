"""`fedgrid.simulate()` and `fedgrid simulate` on a researcher's own data (not the digits): a
3-class tabular dataset with 30 features and a small model compiled from a torch module.

Data that does not fit the plan is refused, with a code, before anything reaches the Node; a run
against a real Node learns well above chance.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedgrid import Admin
from fedgrid.cli import main
from fedgrid.data import DataError, split_iid
from fedgrid.simulate import (
    _FILE_SHARDS,
    DeviceTask,
    Progress,
    SimulationResult,
    _device_shard,
    _ShardStore,
    simulate,
)
from fedgrid.simulation_console import SimulationConsole
from fedgrid_plans import tensors
from tests.support.databases import database_backends

FEATURES, CLASSES = 30, 3


def tabular(examples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 30 dimensions, their means 1.5 apart per feature on average."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.5, size=(CLASSES, FEATURES))
    labels = rng.integers(0, CLASSES, size=examples)
    features = means[labels] + rng.normal(size=(examples, FEATURES))
    return features.astype(np.float32), labels.astype(np.int64)


def small_mlp():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


@pytest.fixture(scope="module")
def tabular_plan():
    """The small MLP compiled for the tabular data (the researcher side; needs torch)."""
    from fedgrid.admin import compile_model

    features, labels = tabular(4)
    return compile_model(small_mlp(), (features[:2], labels[:2]), name="tabular_mlp")


@pytest.fixture(scope="module")
def plan_files(tmp_path_factory, tabular_plan):
    folder = tmp_path_factory.mktemp("tabular-plan")
    (folder / "tabular.fgplan").write_bytes(tabular_plan.to_bytes())
    (folder / "initial.safetensors").write_bytes(tensors.encode(tabular_plan.checkpoint()))
    return folder / "tabular.fgplan", folder / "initial.safetensors"


@pytest.fixture
def silent_node(stub_http_server):
    """A URL that records every request: the refusals below must not send any."""
    requests: list = []

    def answer(request):
        requests.append(request)
        return 500, {"error": {"code": "internal_error", "message": "must not be called"}}

    server = stub_http_server(get=answer, post=answer)
    server.requests = requests
    return server


def wrong_lengths():
    features, labels = tabular(40)
    return {"data": (features, labels[:39])}


def files_with_an_empty_device(tmp_path):
    features, labels = tabular(40)
    np.savez(tmp_path / "a.npz", features=features, labels=labels)
    np.savez(tmp_path / "b.npz", features=features[:0], labels=labels[:0])
    return {"device_data": tmp_path}


REFUSALS = {
    "wrong feature shape": (lambda tmp: {"data": (tabular(40)[0][:, :20], tabular(40)[1]),
                                           "devices": 4, "per_cycle": 2},
                            "data_shape_mismatch", "(20,) but tabular_mlp takes (30,)"),
    "labels out of range": (lambda tmp: {"data": (tabular(40)[0], np.arange(40) % 5)},
                            "labels_out_of_range", "3 classes (0..2)"),
    "negative labels": (lambda tmp: {"data": (tabular(40)[0], -np.ones(40, dtype=int))},
                        "labels_out_of_range", "labels range over -1..-1"),
    "fractional labels": (lambda tmp: {"data": (tabular(40)[0], np.full(40, 0.5))},
                          "labels_invalid", "whole class indices"),
    "one-hot labels": (lambda tmp: {"data": (tabular(40)[0], np.eye(3)[np.arange(40) % 3])},
                       "labels_invalid", "argmax"),
    "NaN features": (lambda tmp: {"data": (np.full((40, 30), np.nan), np.zeros(40, int))},
                     "features_not_finite", "NaN or infinite"),
    "mismatched lengths": (lambda tmp: wrong_lengths(), "data_length_mismatch",
                           "40 feature rows but 39 labels"),
    "a split of per-device data": (lambda tmp: {"device_data": [tabular(20), tabular(20)],
                                                "split": "dirichlet", "per_cycle": 1},
                                   "data_invalid", "per-device data is split already"),
    "an empty device file": (files_with_an_empty_device, "shard_empty", "b.npz: no examples"),
    "more devices than examples": (lambda tmp: {"data": tabular(40), "devices": 50,
                                                "per_cycle": 2},
                                   "too_many_devices", "over 50 devices"),
    "alpha zero": (lambda tmp: {"data": tabular(40), "split": "dirichlet", "alpha": 0.0},
                   "split_invalid", "alpha must be > 0"),
    "test set of another shape": (lambda tmp: {"data": tabular(40), "devices": 4,
                                               "per_cycle": 2,
                                               "test": (np.ones((5, 8)), np.zeros(5, int))},
                                  "data_shape_mismatch", "test set"),
    "per_cycle above devices": (lambda tmp: {"data": tabular(40), "devices": 3},
                                "per_cycle_invalid", "per_cycle (5)"),
    "no data for a non-digits model": (lambda tmp: {}, "data_shape_mismatch",
                                       "give your own data"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_data_that_does_not_fit_is_refused_before_anything_is_hosted(case, tabular_plan,
                                                                     silent_node, tmp_path):
    arguments, code, message = REFUSALS[case]
    with pytest.raises(DataError) as raised:
        simulate(silent_node.url, "token", model=tabular_plan, processes=0,
                 **arguments(tmp_path))
    assert raised.value.code == code, str(raised.value)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert silent_node.requests == []


@pytest.mark.parametrize("backend", database_backends())
def test_learns_a_tabular_dataset_split_by_dirichlet_label_skew_on_a_real_node(
        node_factory, backend):
    node = node_factory(backend)
    features, labels = tabular(600)
    progress: list[Progress] = []
    result = simulate(
        node.url, node.admin_token, model=small_mlp(), data=(features, labels),
        test_fraction=0.25, devices=6, per_cycle=3, cycles=4, split="dirichlet", alpha=1.0,
        epochs=2, batch_size=16, processes=0, seed=1, on_progress=progress.append,
    )
    # The model was compiled here from the torch module, for the data's 30 features.
    assert result.name.startswith("Sequential-sim-")
    assert len(result.records) == 4 and all(r.reports == 3 for r in result.records)
    assert [r.checkpoint for r in result.records] == [2, 3, 4, 5]
    assert result.initial_test_accuracy < 0.6
    assert result.best.test_accuracy >= 0.85, [r.test_accuracy for r in result.records]
    assert "450 training examples over 6 devices (Dirichlet alpha=1)" in result.data
    assert "test set 150 examples held out" in result.data
    stages = [p.stage for p in progress]
    assert stages[:4] == ["compile", "host", "devices", "ready"]
    assert [(p.cycle, p.done) for p in progress if p.stage == "cycle"][:5] == [
        (1, 0), (1, 1), (1, 2), (1, 3), (2, 0)]
    with Admin(node.url, node.admin_token) as admin:
        assert admin.checkpoints(result.name)["latest"] == 5


def test_per_device_files_and_a_test_file_from_the_command_line(sdk_node, plan_files, tmp_path):
    """The CLI in a fresh process, devices in two worker processes that read their shards from
    files: one .npz per device (unequal sizes, as devices have) and an explicit test set."""
    plan, checkpoint = plan_files
    features, labels = tabular(500, seed=3)
    devices = tmp_path / "devices"
    devices.mkdir()
    for number, rows in enumerate(np.array_split(np.arange(400), [60, 160, 250, 330])):
        np.savez(devices / f"device-{number}.npz", x=features[rows], y=labels[rows])
    np.savez(tmp_path / "test.npz", features=features[400:], labels=labels[400:])
    env = {k: v for k, v in os.environ.items() if k not in ("FEDGRID_URL", "FEDGRID_ADMIN_TOKEN")}
    finished = subprocess.run(
        [sys.executable, "-m", "fedgrid", "simulate", "--url", sdk_node.url,
         "--admin-token", sdk_node.admin_token, "--model", str(plan), "--checkpoint",
         str(checkpoint), "--device-data", str(devices), "--test", str(tmp_path / "test.npz"),
         "--per-cycle", "3", "--cycles", "3", "--epochs", "2", "--processes", "2"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert "per-device data: 400 training examples on 5 devices; test set 100 examples" in lines[0]
    rows = [line for line in lines if line.startswith("cycle ")]
    assert len(rows) == 3 and all("reports 3" in row for row in rows)
    final = float(rows[-1].split("test acc ")[1].split()[0])
    assert final >= 0.8, finished.stdout
    assert "after 3 cycles" in lines[-1] and "9 reports" in lines[-1]
    # Not a terminal: progress is whole lines, no carriage returns, no tracebacks or warnings.
    assert "hosting tabular_mlp-sim-" in finished.stderr
    assert "\r" not in finished.stderr and "Traceback" not in finished.stderr
    assert "Warning" not in finished.stderr


def test_the_command_line_splits_one_npz_and_refuses_bad_data_in_one_line(
        sdk_node, plan_files, tmp_path, capsys):
    plan, checkpoint = plan_files
    features, labels = tabular(300, seed=5)
    np.savez(tmp_path / "data.npz", features=features, labels=labels)
    node = ["--url", sdk_node.url, "--admin-token", sdk_node.admin_token]
    model = ["--model", str(plan), "--checkpoint", str(checkpoint)]
    assert main(["simulate", *node, *model, "--data", str(tmp_path / "data.npz"),
                 "--test-fraction", "0.2", "--split", "shards", "--shards-per-device", "2",
                 "--devices", "4", "--per-cycle", "4", "--cycles", "2", "--processes", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "240 training examples over 4 devices (label shards, 2 per device)" in out[0]
    assert len([line for line in out if line.startswith("cycle ")]) == 2

    np.savez(tmp_path / "wide.npz", features=np.ones((10, 31)), labels=np.zeros(10))
    before = len(Admin(sdk_node.url, sdk_node.admin_token).processes())
    for arguments, message in [
        (["--data", str(tmp_path / "wide.npz")], "(31,) but tabular_mlp takes (30,)"),
        (["--data", str(tmp_path / "missing.npz")], "missing.npz: no such file"),
        (["--data", str(tmp_path / "data.npz"), "--split", "dirichlet", "--alpha", "-1"],
         "alpha must be > 0"),
    ]:
        assert main(["simulate", *node, *model, *arguments, "--processes", "0"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert len(Admin(sdk_node.url, sdk_node.admin_token).processes()) == before

    assert main(["simulate", *node, "--model", str(plan), "--data", str(tmp_path / "data.npz")]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_device_processes_map_their_shards_from_files_instead_of_receiving_them_per_task():
    features, labels = tabular(5000)  # 600 kB of features
    shards = split_iid(features, labels, 4, seed=0)
    store = _ShardStore.hold(shards, in_files=True)
    try:
        task = DeviceTask("http://127.0.0.1:1", "m", "1.0", "worker", 2, 7, store.location)
        assert len(pickle.dumps(task)) < 1000  # what a process is sent per turn: no data
        x, y = _device_shard(task.shards, task.device)  # as a worker process reads it
        np.testing.assert_array_equal(x, shards[2][0])
        np.testing.assert_array_equal(y, shards[2][1])
        assert isinstance(x.base, np.memmap)  # mapped from the file, not a copy
        assert _device_shard(task.shards, task.device)[0] is x  # and read once per worker
    finally:
        for device in range(4):
            _FILE_SHARDS.pop((store.location, device), None)
        store.release()
    assert not Path(store.location).exists()


def test_the_console_shows_device_progress_only_on_a_terminal():
    record = type("Record", (), {"line": lambda self: "cycle   1  reports 2"})()
    result = SimulationResult("m", "1.0", 0.3)
    for live in (True, False):
        out, err = io.StringIO(), io.StringIO()
        console = SimulationConsole(out, err, live=live)
        console.progress(Progress("host", "hosting m..."))
        console.progress(Progress("ready", "m: data"))
        console.progress(Progress("cycle", "cycle 1: 1/2 devices done", cycle=1, done=1, total=2))
        console.cycle(record)
        console.summary(result)
        assert out.getvalue().splitlines() == ["m: data", "cycle   1  reports 2", result.summary()]
        if live:  # one status line rewritten in place, cleared before the cycle's row
            assert err.getvalue() == ("hosting m...\n\r\x1b[Kcycle 1: 1/2 devices done\r\x1b[K")
        else:
            assert err.getvalue() == "hosting m...\n"
