"""Federated evaluation with SDK devices in participate() against a real Node, on each backend.

Every device evaluates on the same examples that the researcher also gave the Node as its held-out
set, so the Node's federated score of a checkpoint (the num_samples-weighted mean of the devices'
reports) must equal its own held-out score of that checkpoint: the SDK's evaluation and the Node's
scoring check each other.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fedgrid import Admin, Client
from tests.support.databases import database_backends

DEVICES = 5
NUM_CYCLES = 3
JOIN_SECONDS = 300


@pytest.mark.parametrize("backend", database_backends())
def test_a_fleet_evaluates_on_schedule_without_slowing_training(node_factory, host, digits,
                                                                backend):
    node = node_factory(backend)
    name = host(node=node, server_config={
        "max_diffs": 2, "max_workers": 2, "cycle_length": 600, "num_cycles": NUM_CYCLES,
        "evaluation_every": 1, "evaluation_devices": 2})
    features, labels = digits
    held_out = (features[:200], labels[:200])
    with Admin(node.url, node.admin_token) as admin:
        assert admin.upload_evaluation_set(name, *held_out)["num_samples"] == 200
    shards = [(features[200 + i::DEVICES], labels[200 + i::DEVICES]) for i in range(DEVICES)]
    clients = [Client(node.url if i % 2 == 0 else node.ws_url) for i in range(DEVICES)]
    jobs = [client.new_job(name) for client in clients]
    reports: list[list[dict]] = [[] for _ in range(DEVICES)]
    failures: list[BaseException] = []

    def device(index: int) -> None:
        try:
            reports[index] = jobs[index].participate(shards[index], evaluation_data=held_out)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread below)
            failures.append(exc)

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(DEVICES)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), node.log()[-4000:]
        assert not failures, failures
    finally:
        for job in jobs:
            job.stop()
        for client in clients:
            client.close()

    made = [entry for device_reports in reports for entry in device_reports]
    evaluated = [entry for entry in made if entry["task"] == "evaluate"]
    assert evaluated, "no device was given an evaluation assignment"
    assert all(entry["num_samples"] == 200 and set(entry["metrics"]) == {"accuracy", "loss"}
               for entry in evaluated)
    with Admin(node.url, node.admin_token) as admin:
        cycles = admin.cycles(name)
        # Evaluations did not count toward any goal: each cycle closed on its two trainers.
        assert [(c["status"], c["reason"], c["reported"]) for c in cycles] == [
            ("completed", "goal", 2)] * NUM_CYCLES
        assert sum(entry["task"] == "train" for entry in made) == 2 * NUM_CYCLES
        deadline = time.monotonic() + 60
        while True:  # the held-out scores are made in the background: wait for all of them
            listing = admin.evaluations(name)
            if all(entry["test_metrics"] for entry in listing) and len(listing) == NUM_CYCLES + 1:
                break
            assert time.monotonic() < deadline, listing
            time.sleep(0.1)
    federated = {entry["number"]: entry for entry in listing if entry["federated_metrics"]}
    assert sorted(federated) == sorted({entry["checkpoint"] for entry in evaluated})
    for number, entry in federated.items():
        on_devices = entry["federated_metrics"]
        assert on_devices["reports"] == sum(e["checkpoint"] == number for e in evaluated)
        for metric in ("accuracy", "loss"):
            assert on_devices["metrics"][metric] == pytest.approx(
                entry["test_metrics"][metric], rel=1e-5), (number, metric)
    # A trained checkpoint beats the hosted one on the held-out set (the scores are not noise).
    scores = {entry["number"]: entry["test_metrics"]["accuracy"] for entry in listing}
    assert scores[NUM_CYCLES + 1] > scores[1]
    assert np.isfinite(list(scores.values())).all()


def test_the_cli_shows_test_accuracy_per_cycle_and_watch_scores_each_checkpoint(
        sdk_node, host, digits, compiled_mlp, tmp_path, capsys):
    from fedgrid.cli import main

    name = host(server_config={"max_diffs": 1, "num_cycles": 2, "cycle_length": 600})
    features, labels = digits
    test_features, test_labels = features[:150], labels[:150]
    node = ["--url", sdk_node.url, "--admin-token", sdk_node.admin_token]
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        admin.upload_evaluation_set(name, test_features, test_labels)
        with Client(sdk_node.url) as client:
            client.new_job(name).participate((features[150:300], labels[150:300]))
        deadline = time.monotonic() + 60
        while not all(entry["test_metrics"] for entry in admin.evaluations(name)) or len(
                admin.evaluations(name)) < 3:
            assert time.monotonic() < deadline, admin.evaluations(name)
            time.sleep(0.1)
        scores = {e["number"]: e["test_metrics"] for e in admin.evaluations(name)}

    assert main(["cycles", name, *node]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"checkpoint 1 (hosted)  test acc {scores[1]['accuracy']:.4f}"
    for line, produced in zip(lines[1:], (2, 3), strict=True):
        assert f"test acc {scores[produced]['accuracy']:.4f}" in line, line

    np.savez(tmp_path / "test.npz", features=test_features, labels=test_labels)
    (tmp_path / "plan.fgplan").write_bytes(compiled_mlp.to_bytes())
    assert main(["watch", name, "--test", str(tmp_path / "test.npz"), "--plan",
                 str(tmp_path / "plan.fgplan"), "--interval", "0.1", *node]) == 0
    watched = capsys.readouterr().out.splitlines()
    # The local scores are the Node's: the same plan, checkpoints and examples.
    assert watched == [
        f"checkpoint {n}: accuracy {scores[n]['accuracy']:.4f}  loss {scores[n]['loss']:.4f}  "
        f"(150 samples)" for n in (1, 2, 3)]


def test_an_evaluation_assignment_in_the_call_style(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 1, "max_workers": 1, "cycle_length": 600,
                               "evaluation_every": 1})
    features, labels = digits
    data = (features[:120], labels[:120])
    with Client(sdk_node.url) as client:
        trainer = client.new_job(name).request()
        assert trainer.task == "train"
        evaluator = client.new_job(name).request()
        assert evaluator.task == "evaluate" and evaluator.checkpoint == 1
        trained = evaluator.train(data)  # possible, but not what it reports
        with pytest.raises(ValueError, match="evaluation assignment"):
            evaluator.report(trained)
        result = evaluator.evaluate(data)
        assert result.num_samples == 120 and set(result.metrics) == {"accuracy", "loss"}
        assert evaluator.report(result)["status"] == "success"
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        (evaluated,) = admin.evaluations(name)
        assert evaluated["number"] == 1 and evaluated["test_metrics"] is None
        assert evaluated["federated_metrics"] == {"metrics": result.metrics, "num_samples": 120,
                                                  "reports": 1}
        assert admin.cycles(name)[0]["reported"] == 0  # not toward the goal
