"""End to end: a real Node process, two devices over plain HTTP, one cycle, checked to the bit.

Each device authenticates, asks for a cycle, downloads the checkpoint and the plan, and reports a
diff with its own num_samples; checkpoint 2 must be checkpoint 1 minus the num_samples-weighted
average of the two diffs (FedAvg, server learning rate 1), computed here independently in float64,
to within float32 rounding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from fedgrid_plans import tensors
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff


@pytest.mark.parametrize("backend", database_backends())
def test_two_devices_produce_the_exact_weighted_average(node_factory, backend):
    node = node_factory(backend)
    admin = {"Authorization": f"Bearer {node.admin_token}"}
    plan, checkpoint = logistic_regression()
    hosted = requests.post(
        f"{node.url}/model-centric/host-training",
        data={
            "name": "digits-logreg",
            "version": "1",
            "client_config": json.dumps({"batch_size": 8, "lr": 0.05}),
            "server_config": json.dumps({"max_diffs": 2, "cycle_length": 300}),
        },
        files={"model": ("model.safetensors", checkpoint),
               "plans[training_plan]": ("plan.fgplan", plan)},
        headers=admin,
        timeout=30,
    )
    assert hosted.status_code == 200, hosted.text

    devices = []
    for seed, num_samples in ((1, 30), (2, 90)):
        auth = requests.post(f"{node.url}/model-centric/authenticate",
                             json={"model_name": "digits-logreg", "model_version": "1"}, timeout=10)
        worker_id = auth.json()["worker_id"]
        cycle = requests.post(f"{node.url}/model-centric/cycle-request",
                              json={"worker_id": worker_id, "model": "digits-logreg", "version": "1",
                                    "ping": 3, "download": 100, "upload": 100}, timeout=10).json()
        assert cycle["status"] == "accepted"
        key = {"worker_id": worker_id, "request_key": cycle["request_key"]}
        model = requests.get(f"{node.url}/model-centric/get-model",
                             params={**key, "model_id": cycle["model_id"]}, timeout=10)
        assert model.content == checkpoint and model.headers["X-Fedgrid-Checkpoint"] == "1"
        plan_id = cycle["plans"]["training_plan"]
        downloaded_plan = requests.get(f"{node.url}/model-centric/get-plan",
                                       params={**key, "plan_id": plan_id}, timeout=10)
        assert downloaded_plan.content == plan
        devices.append((key, random_diff(checkpoint, seed), num_samples))

    for key, diff, num_samples in devices:
        answer = requests.post(
            f"{node.url}/model-centric/report",
            params={**key, "num_samples": num_samples, "metrics": json.dumps({"loss": 1.0})},
            data=tensors.encode(diff),
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    second = requests.get(f"{node.url}/model-centric/retrieve-model",
                          params={"name": "digits-logreg", "version": "1", "checkpoint": 2},
                          headers=admin, timeout=10)
    assert second.status_code == 200, second.text
    new_params = tensors.decode(second.content)
    start = tensors.decode(checkpoint)
    total = sum(n for _, _, n in devices)
    for name, value in start.items():
        weighted = np.zeros(value.shape, np.float64)
        for _, diff, num_samples in devices:
            weighted += diff[name].astype(np.float64) * num_samples
        expected = (value - weighted / total).astype(np.float32)
        # The Node sums weighted diffs in float32 groups (then float64): equal to the float64
        # reference up to float32 rounding of values of this size (~0.1).
        np.testing.assert_allclose(new_params[name], expected, rtol=0, atol=5e-8)
    # And the unweighted mean (PyGrid's) would have been different.
    name = next(iter(start))
    unweighted = start[name] - (devices[0][1][name] + devices[1][1][name]) / 2
    assert not np.allclose(new_params[name], unweighted)
