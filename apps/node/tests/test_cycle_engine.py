"""The cycle engine in a real Node process: deadlines, quorum, selection, metrics, durability."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.models import logistic_regression, random_diff, unique_name

WAIT_SECONDS = 45  # generous: the machine may be busy; polls end as soon as the state is reached


def host(api, name, **server_config):
    plan, checkpoint = logistic_regression()
    answer = api.call(
        "host-training",
        {"name": name, "version": "1", "client_config": {"batch_size": 8},
         "server_config": server_config},
        blobs={"model": checkpoint, "plans/training_plan": plan},
        admin=True,
    )
    assert answer.status == 200, answer.body


def request_place(api, name, worker_id=None):
    if worker_id is None:
        worker_id = api.call("authenticate", {"model_name": name}).body["worker_id"]
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1"})
    assert answer.status == 200, answer.body
    return worker_id, answer.body


def report(api, worker_id, body, seed, num_samples=10, metrics=None):
    diff = tensors.encode(random_diff(logistic_regression()[1], seed))
    data = {"worker_id": worker_id, "request_key": body["request_key"], "num_samples": num_samples}
    if metrics:
        data["metrics"] = metrics
    return api.call("report", data, blobs={"diff": diff})


def cycles_of(api, name):
    return api.call("cycles", {"name": name}, admin=True).body["cycles"]


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def test_deadline_closes_the_cycle_without_any_report_arriving(api):
    name = unique_name()
    host(api, name, max_diffs=5, min_diffs=1, cycle_length=1.5)
    worker, body = request_place(api, name)
    request_place(api, name)  # a second device that never reports
    assert report(api, worker, body, seed=1).status == 200
    closed = wait_for(lambda: [c for c in cycles_of(api, name) if c["status"] == "completed"],
                      "the deadline to close cycle 1")
    first = closed[0]
    assert first["reason"] == "deadline" and first["reported"] == 1
    assert first["accepted"] == 2 and first["dropped"] == 1 and first["new_checkpoint"] == 2
    assert cycles_of(api, name)[-1]["sequence"] == 2


def test_quorum_miss_extends_the_deadline(api, shared_node):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=2, cycle_length=1.0, quorum_policy="extend",
         extend_seconds=1.0)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    first_deadline = cycles_of(api, name)[0]["deadline"]
    wait_for(lambda: cycles_of(api, name)[0]["deadline"] != first_deadline, "an extension")
    cycles = cycles_of(api, name)
    assert len(cycles) == 1 and cycles[0]["status"] == "open" and cycles[0]["reported"] == 1
    assert "missed its quorum" in shared_node.log()
    # The second report arrives during the extension; the next deadline aggregates both.
    other, other_body = request_place(api, name)
    assert report(api, other, other_body, seed=2).status == 200
    done = wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed" and cycles_of(api, name),
                    "cycle 1 to complete")
    assert done[0]["reported"] == 2 and done[0]["new_checkpoint"] == 2


def test_quorum_miss_with_abandon_starts_a_fresh_cycle_on_the_same_checkpoint(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=2, cycle_length=1.0, quorum_policy="abandon")
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    wait_for(lambda: cycles_of(api, name)[0]["status"] == "abandoned", "cycle 1 to be abandoned")
    cycles = cycles_of(api, name)
    assert cycles[0]["reported"] == 1 and cycles[0]["reason"] == "deadline"
    assert cycles[1]["status"] == "open" and cycles[1]["checkpoint"] == 1
    listing = api.call("checkpoints", {"name": name}, admin=True).body
    assert [c["number"] for c in listing["checkpoints"]] == [1]


def test_default_over_selection_accepts_thirty_percent_above_the_goal(api):
    name = unique_name()
    host(api, name, max_diffs=10)
    answers = [request_place(api, name)[1] for _ in range(14)]
    assert [a["status"] for a in answers].count("accepted") == 13
    assert answers[-1]["status"] == "rejected" and answers[-1]["reason"] == "cycle_full"
    figures = cycles_of(api, name)[0]
    assert figures["accepted"] == 13 and figures["rejected"] == {"cycle_full": 1}


def test_reuse_cool_down_in_cycles(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, do_not_reuse_workers_until_cycle=2)
    veteran, body = request_place(api, name)
    assert report(api, veteran, body, seed=1).status == 200  # goal of 1: cycle 1 closes
    _, again = request_place(api, name, veteran)
    assert again["status"] == "rejected" and again["reason"] == "worker_cooling_down"
    newcomer, body = request_place(api, name)
    assert body["status"] == "accepted" and body["cycle"] == 2
    assert report(api, newcomer, body, seed=2).status == 200
    _, third = request_place(api, name, veteran)
    assert third["status"] == "accepted" and third["cycle"] == 3


def test_training_finished_is_said_only_when_num_cycles_are_done(api):
    name = unique_name()
    host(api, name, max_diffs=1, num_cycles=2)
    for seed in (1, 2):
        worker, body = request_place(api, name)
        assert body["status"] == "accepted"
        assert report(api, worker, body, seed=seed).status == 200
    _, answer = request_place(api, name)
    assert answer == {"status": "rejected", "reason": "training_finished", "model": name,
                      "version": "1"}
    listing = api.call("checkpoints", {"name": name}, admin=True).body
    assert listing["latest"] == 3


def test_cycle_metrics_json_and_prometheus(api, shared_node):
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2)
    first, first_body = request_place(api, name)
    second, second_body = request_place(api, name)
    request_place(api, name)  # rejected: cycle_full
    assert report(api, first, first_body, seed=1, num_samples=30,
                  metrics={"loss": 1.0, "accuracy": 0.5}).status == 200
    live = cycles_of(api, name)[0]
    assert live["status"] == "open" and live["reported"] == 1 and live["num_samples"] == 30
    assert report(api, second, second_body, seed=2, num_samples=10,
                  metrics={"loss": 3.0, "accuracy": 0.9}).status == 200
    closed = cycles_of(api, name)[0]
    assert closed["status"] == "completed" and closed["reason"] == "goal"
    assert closed["client_metrics"]["loss"] == pytest.approx((30 * 1.0 + 10 * 3.0) / 40)
    assert closed["client_metrics"]["accuracy"] == pytest.approx((30 * 0.5 + 10 * 0.9) / 40)
    assert closed["rejected"] == {"cycle_full": 1} and closed["aggregation_seconds"] >= 0

    anonymous = requests.get(f"{shared_node.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    text = requests.get(f"{shared_node.url}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {shared_node.admin_token}"}).text
    labels = f'model="{name}",version="1"'
    assert f"fedgrid_reports_total{{{labels}}} 2.0" in text
    assert f"fedgrid_checkpoint{{{labels}}} 2.0" in text
    assert f'fedgrid_cycle_requests_rejected_total{{{labels},reason="cycle_full"}} 1.0' in text
    assert f'fedgrid_client_metric{{{labels},metric="loss"}} 1.5' in text


def test_processes_run_side_by_side_without_interfering(api):
    first, second = unique_name(), unique_name()
    host(api, first, max_diffs=2)
    host(api, second, max_diffs=2)
    places = {name: [request_place(api, name) for _ in range(2)] for name in (first, second)}
    # Interleave: one report each, then the second each.
    for index in range(2):
        for offset, name in enumerate((first, second)):
            worker, body = places[name][index]
            assert report(api, worker, body, seed=10 * offset + index, num_samples=5 + index).status == 200
    start = tensors.decode(logistic_regression()[1])
    for offset, name in enumerate((first, second)):
        latest = api.call("retrieve-model", {"name": name}, admin=True).content
        params = tensors.decode(latest)
        diffs = [(random_diff(logistic_regression()[1], 10 * offset + i), 5 + i) for i in range(2)]
        for key, value in start.items():
            weighted = sum(d[key].astype(np.float64) * n for d, n in diffs) / 11
            np.testing.assert_allclose(params[key], (value - weighted).astype(np.float32),
                                       rtol=0, atol=5e-8)


def test_hosted_averaging_plan_averages_like_pygrid(api):
    name = unique_name()
    plan, checkpoint = logistic_regression()
    no_plan = api.call(
        "host-training",
        {"name": name, "version": "1", "server_config": {"strategy": "hosted_averaging_plan"}},
        blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert (no_plan.status, no_plan.error_code) == (400, "server_config_invalid")
    answer = api.call(
        "host-training",
        {"name": name, "version": "1",
         "server_config": {"max_diffs": 3, "strategy": "hosted_averaging_plan"}},
        blobs={"model": checkpoint, "plans/training_plan": plan, "averaging_plan": plan},
        admin=True)
    assert answer.status == 200, answer.body
    for seed, num_samples in ((1, 5), (2, 500), (3, 50)):
        worker, body = request_place(api, name)
        assert report(api, worker, body, seed=seed, num_samples=num_samples).status == 200
    params = tensors.decode(api.call("retrieve-model", {"name": name}, admin=True).content)
    start = tensors.decode(checkpoint)
    diffs = [random_diff(checkpoint, seed) for seed in (1, 2, 3)]
    for key, value in start.items():
        unweighted = sum(d[key].astype(np.float64) for d in diffs) / 3  # PyGrid's plain mean
        np.testing.assert_allclose(params[key], value - unweighted, rtol=1e-5, atol=1e-6)
