"""A report that arrives after its cycle's deadline, or after its lease, is never counted, even
when the watcher that closes the cycle (or frees the place) has not run yet: under load it waits
for the cycle's lock behind other requests. The Node runs in-process here with its clock moved
forward for the engine only, so the watcher (asleep on the real clock) stays asleep."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import gevent
import pytest

from fedgrid_node.app import create_app
from fedgrid_node.config import NodeConfig
from fedgrid_node.cycles import engine as engine_module
from fedgrid_plans import tensors
from tests.support.models import logistic_regression, random_diff, unique_name

ADMIN = {"Authorization": "Bearer admin-token"}


@pytest.fixture
def app(tmp_path):
    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin-token"))
    yield app
    app.extensions["fedgrid"].engine.stop()


@pytest.fixture
def node(app):
    return app.test_client()


def place(client, **server_config) -> tuple[str, str, str]:
    plan, checkpoint = logistic_regression()
    name = unique_name("late")
    hosted = client.post("/model-centric/host-training", headers=ADMIN, data={
        "name": name, "version": "1", "client_config": json.dumps({"batch_size": 8}),
        "server_config": json.dumps(server_config),
        "model": (io.BytesIO(checkpoint), "model.safetensors"),
        "plans[training_plan]": (io.BytesIO(plan), "plan.fgplan")})
    assert hosted.status_code == 200, hosted.json
    worker = client.post("/model-centric/authenticate", json={"model_name": name}).json["worker_id"]
    answer = client.post("/model-centric/cycle-request", json={"worker_id": worker, "model": name})
    assert answer.json["status"] == "accepted", answer.json
    return name, worker, answer.json["request_key"]


def report(client, worker: str, key: str):
    diff = tensors.encode(random_diff(logistic_regression()[1], 0))
    return client.post("/model-centric/report", data=diff,
                       query_string={"worker_id": worker, "request_key": key, "num_samples": 10},
                       headers={"Content-Type": "application/octet-stream"})


def later(app, monkeypatch, seconds: float) -> None:
    """Move the engine's clock; first let the cycle's watcher go back to sleep (on the real
    clock), as it does after each acceptance, so that it does not act on the moved clock."""
    (state,) = app.extensions["fedgrid"].engine._open.values()
    for _ in range(1000):
        if not state.wakeup.is_set():
            break
        gevent.sleep(0.01)
    assert not state.wakeup.is_set(), "the watcher did not go back to sleep"
    real = engine_module.utcnow
    monkeypatch.setattr(engine_module, "utcnow", lambda: real() + timedelta(seconds=seconds))


def cycle_one(client, name):
    return client.get("/model-centric/cycles", headers=ADMIN, query_string={"name": name}).json["cycles"][0]


def test_a_report_after_the_deadline_is_refused_and_not_counted(app, node, monkeypatch):
    name, worker, key = place(node, max_diffs=5, min_diffs=1, cycle_length=600,
                              quorum_policy="abandon")
    later(app, monkeypatch, 601)
    answer = report(node, worker, key)
    assert (answer.status_code, answer.json["error"]["code"]) == (409, "cycle_closed")
    assert cycle_one(node, name)["reported"] == 0


def test_a_late_report_still_counts_where_the_deadline_would_be_extended(app, node, monkeypatch):
    # No quorum yet and the policy extends: the watcher would move the deadline, so the cycle
    # goes on and the report is on time for it.
    name, worker, key = place(node, max_diffs=5, min_diffs=2, cycle_length=600,
                              quorum_policy="extend")
    later(app, monkeypatch, 601)
    assert report(node, worker, key).status_code == 200
    assert cycle_one(node, name)["reported"] == 1


def test_a_report_after_its_lease_is_refused_and_not_counted(app, node, monkeypatch):
    name, worker, key = place(node, max_diffs=5, min_diffs=1, cycle_length=600,
                              assignment_lease=30)
    later(app, monkeypatch, 31)
    answer = report(node, worker, key)
    assert (answer.status_code, answer.json["error"]["code"]) == (409, "assignment_expired")
    assert cycle_one(node, name)["reported"] == 0


def test_a_late_report_is_refused_once_the_quorum_is_in_whatever_the_policy(app, node, monkeypatch):
    name, worker, key = place(node, max_diffs=5, min_diffs=1, cycle_length=600,
                              quorum_policy="extend")
    other = node.post("/model-centric/authenticate", json={"model_name": name}).json["worker_id"]
    other_key = node.post("/model-centric/cycle-request",
                          json={"worker_id": other, "model": name}).json["request_key"]
    assert report(node, other, other_key).status_code == 200  # on time: the quorum is in
    later(app, monkeypatch, 601)
    answer = report(node, worker, key)
    assert (answer.status_code, answer.json["error"]["code"]) == (409, "cycle_closed")
    assert cycle_one(node, name)["reported"] == 1


def test_no_place_is_given_in_a_cycle_past_its_deadline(app, node, monkeypatch):
    name, _, _ = place(node, max_diffs=5, min_diffs=1, cycle_length=600, quorum_policy="abandon")
    newcomer = node.post("/model-centric/authenticate", json={"model_name": name}).json["worker_id"]
    later(app, monkeypatch, 601)
    answer = node.post("/model-centric/cycle-request", json={"worker_id": newcomer, "model": name})
    assert answer.status_code == 200
    assert answer.json["status"] == "rejected" and answer.json["reason"] == "cycle_full"
    assert 0 < answer.json["timeout"] <= 2
    assert cycle_one(node, name)["accepted"] == 1
