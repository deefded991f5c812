"""The cycle engine off the happy path, against real Node processes on SQLite and PostgreSQL.

Each test reproduces a defect seen with real fleets: lost deadline extensions, places handed out
in a closed cycle, a restored cycle left open at its goal, resends told to drop counted work,
a checkpoint turned infinite, selection figures lost on kill -9, devices asleep while a cycle
waits for them, and crashed devices holding places. Tests synchronise on the Node's state
(the admin `cycles` listing), never on sleeps.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import websocket
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from fedgrid_node.db.models import Process
from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, unique_name

from .test_cycle_engine import cycles_of, host, report, request_place, wait_for


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def authenticate(api, name):
    return api.call("authenticate", {"model_name": name}).body["worker_id"]


def ask(api, name, worker_id, **fields):
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1",
                                         **fields})
    assert answer.status == 200, answer.body
    return answer.body


def in_thread(fn, *args, **kwargs):
    """Run fn(*args, **kwargs) in a thread; returns a callable that joins it and gives its result."""
    result = {}

    def run():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(60)
        assert not thread.is_alive(), "the request never returned"
        if "error" in result:
            raise result["error"]
        return result["value"]

    return join


def scaled_diff(value: float) -> bytes:
    checkpoint = tensors.decode(logistic_regression()[1])
    return tensors.encode({n: np.full(a.shape, value, dtype=a.dtype) for n, a in checkpoint.items()})


# ----------------------------------------------------------------------------- deadlines


def test_every_quorum_miss_extension_is_persisted(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=2, cycle_length=0.5, quorum_policy="extend",
         extend_seconds=0.5)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    # The listing reads the deadline from the database: each extension must be committed (on
    # PostgreSQL the timer used to be killed inside its own commit, which rolled it back).
    seen = [cycles_of(api, name)[0]["deadline"]]

    def three_extensions():
        deadline = cycles_of(api, name)[0]["deadline"]
        if deadline != seen[-1]:
            seen.append(deadline)
        return len(seen) >= 4

    wait_for(three_extensions, "three persisted extensions")
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    cycle = cycles_of(api, name)[0]
    assert cycle["status"] == "open" and cycle["reported"] == 1


# ----------------------------------------------------------------------------- races


def test_racing_requests_never_get_a_place_in_a_closed_cycle(api):
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=200, cycle_length=600)
    first, first_body = request_place(api, name)
    second, second_body = request_place(api, name)
    assert report(api, first, first_body, seed=1).status == 200
    racers = [authenticate(api, name) for _ in range(30)]
    start = threading.Barrier(len(racers) + 1)

    def race(worker_id):
        own = HttpApi(api.url, api.admin_token)
        start.wait()
        try:
            return ask(own, name, worker_id)
        finally:
            own.close()

    joins = [in_thread(race, worker_id) for worker_id in racers]
    start.wait()
    assert report(api, second, second_body, seed=2).status == 200  # the goal: cycle 1 closes
    answers = [join() for join in joins]
    into_first = [a for a in answers if a["status"] == "accepted" and a["cycle"] == 1]
    closed = cycles_of(api, name)[0]
    assert closed["status"] == "completed"
    # Every place handed out in cycle 1 was handed out before it closed: its summary counts it.
    assert closed["accepted"] == 2 + len(into_first)
    assert closed["dropped"] == len(into_first)
    assert all(a["status"] == "accepted" and a["cycle"] in (1, 2) for a in answers)


def test_a_resend_after_the_cycle_closed_is_a_duplicate_not_a_closed_cycle(api):
    name = unique_name()
    host(api, name, max_diffs=1, cycle_length=600)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200  # the goal: the cycle closes
    again = report(api, worker, body, seed=1)
    assert (again.status, again.error_code) == (409, "report_duplicate")


def test_an_overflowing_diff_is_refused(api):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    worker, body = request_place(api, name)
    data = {"worker_id": worker, "request_key": body["request_key"], "num_samples": 5000}
    answer = api.call("report", data, blobs={"diff": scaled_diff(1e35)})
    assert (answer.status, answer.error_code) == (400, "diff_out_of_range")
    assert "5000" in answer.body["error"]["message"]
    # The place is kept: a sane diff from the same device is still taken.
    assert report(api, worker, body, seed=1, num_samples=5000).status == 200


def test_a_non_finite_aggregate_never_becomes_a_checkpoint(api):
    name = unique_name()
    host(api, name, max_diffs=1, cycle_length=600,
         strategy={"name": "fedavg", "server_learning_rate": 1e10})
    worker, body = request_place(api, name)
    data = {"worker_id": worker, "request_key": body["request_key"], "num_samples": 1}
    assert api.call("report", data, blobs={"diff": scaled_diff(1e30)}).status == 200
    cycle = cycles_of(api, name)[0]
    assert cycle["status"] == "abandoned" and cycle["abandoned_because"] == "aggregate_not_finite"
    listing = api.call("checkpoints", {"name": name}, admin=True).body
    assert [c["number"] for c in listing["checkpoints"]] == [1]
    assert cycles_of(api, name)[1]["status"] == "open" and cycles_of(api, name)[1]["checkpoint"] == 1


# ----------------------------------------------------------------------------- long-poll


def held_until_reported(api, name, worker_id, *, requests, place, seed=1, reporter=None):
    """``worker_id`` long-polls (wait=30) on a connection of its own; once cycle 1 counts
    ``requests`` cycle-requests (so the long-poll is being held), ``place`` (a worker and its
    accepted answer) reports, through ``reporter`` (default ``api``: another replica, say).
    Returns the long-poll's answer."""
    reporter = reporter or api
    own = HttpApi(api.url, api.admin_token)
    try:
        join = in_thread(ask, own, name, worker_id, wait=30)
        wait_for(lambda: cycles_of(reporter, name)[0]["requests"] == requests,
                 "the long-poll to be held")
        assert report(reporter, *place, seed=seed).status == 200
        return join()
    finally:
        own.close()


def test_a_long_poll_is_answered_when_the_next_cycle_opens(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    first = request_place(api, name)
    answer = held_until_reported(api, name, authenticate(api, name), requests=2, place=first)
    assert answer["status"] == "accepted" and answer["cycle"] == 2
    # A held request that ended in a place is not a rejection.
    assert cycles_of(api, name)[0]["rejected"] == {}


def test_a_long_poll_that_finds_no_place_is_answered_with_a_rejection(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    request_place(api, name)
    answer = ask(api, name, authenticate(api, name), wait=0.3)
    assert answer["status"] == "rejected" and answer["reason"] == "cycle_full"
    assert answer["timeout"] >= 1
    assert cycles_of(api, name)[0]["rejected"] == {"cycle_full": 1}


def test_a_device_that_already_reported_long_polls_into_the_next_cycle(api):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    early, early_body = request_place(api, name)
    late = request_place(api, name)
    assert report(api, early, early_body, seed=1).status == 200
    answer = held_until_reported(api, name, early, requests=3, place=late, seed=2)
    assert answer["status"] == "accepted" and answer["cycle"] == 2


@pytest.mark.parametrize("wait", [-1, 31, "soon", True])
def test_wait_out_of_range_is_refused(api, wait):
    name = unique_name()
    host(api, name)
    answer = api.call("cycle-request", {"worker_id": authenticate(api, name), "model": name,
                                        "version": "1", "wait": wait})
    assert (answer.status, answer.error_code) == (400, "invalid_request")
    assert "wait" in answer.body["error"]["message"]


def test_a_held_long_poll_does_not_hold_up_other_frames_on_its_websocket(api, shared_node):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    first, first_body = request_place(api, name)
    ws = websocket.create_connection(shared_node.ws_url, timeout=60)
    try:
        # More held long-polls than frames handled at once: devices sharing one socket must
        # still be able to report while others wait.
        for index in range(12):
            ws.send(json.dumps({"type": "model-centric/cycle-request", "request_id": index,
                                "data": {"worker_id": authenticate(api, name), "model": name,
                                         "wait": 30}}))
        wait_for(lambda: cycles_of(api, name)[0]["requests"] == 13, "the long-polls to be held")
        ws.send(json.dumps({"type": "model-centric/authenticate", "request_id": "quick",
                            "data": {"model_name": name}}))
        quick = json.loads(ws.recv())
        assert quick["request_id"] == "quick" and quick["data"]["status"] == "success"
        assert report(api, first, first_body, seed=1).status == 200
        # One of the twelve gets cycle 2's only place at once; the rest stay held.
        held = json.loads(ws.recv())
        assert held["request_id"] in range(12)
        assert held["data"]["status"] == "accepted" and held["data"]["cycle"] == 2
    finally:
        ws.close()


def test_a_device_turned_away_on_a_websocket_is_told_when_a_place_opens(api, shared_node):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    first, first_body = request_place(api, name)
    waiting = authenticate(api, name)
    ws = websocket.create_connection(shared_node.ws_url, timeout=60)
    try:
        # A client that does not ask for pushes (`notify`) never gets a frame it did not request.
        ws.send(json.dumps({"type": "model-centric/cycle-request", "request_id": 0,
                            "data": {"worker_id": authenticate(api, name), "model": name}}))
        assert json.loads(ws.recv())["data"]["reason"] == "cycle_full"
        ws.send(json.dumps({"type": "model-centric/cycle-request", "request_id": 1,
                            "data": {"worker_id": waiting, "model": name, "notify": True}}))
        rejected = json.loads(ws.recv())["data"]
        assert rejected["reason"] == "cycle_full" and rejected["timeout"] >= 1
        # While the device sleeps its timeout, the place opens: the Node pushes, unasked.
        assert report(api, first, first_body, seed=1).status == 200
        push = json.loads(ws.recv())
        assert push == {"type": "model-centric/place-available", "request_id": None,
                        "data": {"model": name, "version": "1"}}
        ws.send(json.dumps({"type": "model-centric/cycle-request", "request_id": 2,
                            "data": {"worker_id": waiting, "model": name}}))
        accepted = json.loads(ws.recv())
        assert accepted["request_id"] == 2 and accepted["data"]["status"] == "accepted"
        assert accepted["data"]["cycle"] == 2
        # One push per rejection: the next frame on the socket is the answer to the next request.
        ws.send(json.dumps({"type": "model-centric/authenticate", "request_id": 3,
                            "data": {"model_name": name}}))
        assert json.loads(ws.recv())["request_id"] == 3
    finally:
        ws.close()


# ----------------------------------------------------------------------------- leases


def test_a_device_that_does_not_report_in_its_lease_loses_its_place(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600, assignment_lease=0.5)
    crashed, crashed_body = request_place(api, name)
    assert 0 < crashed_body["timeout"] <= 0.5
    # Another device long-polls for the place; it gets it when the lease runs out, in cycle 1.
    replacement = ask(api, name, authenticate(api, name), wait=30)
    assert replacement["status"] == "accepted" and replacement["cycle"] == 1
    late = report(api, crashed, crashed_body, seed=1)
    assert (late.status, late.error_code) == (409, "assignment_expired")
    download = api.call("get-model", {"worker_id": crashed,
                                      "request_key": crashed_body["request_key"]})
    assert download.error_code == "assignment_expired"
    figures = cycles_of(api, name)[0]
    assert figures["expired"] >= 1 and figures["accepted"] == 2
    prometheus = api.session.get(api.url + "/metrics",
                                 headers={"Authorization": f"Bearer {api.admin_token}"}).text
    assert f'fedgrid_assignments_expired_total{{model="{name}",version="1"}} 1' in prometheus


def test_a_device_whose_lease_ran_out_may_ask_again(api):
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2, cycle_length=600, assignment_lease=0.3)
    worker, first = request_place(api, name)
    wait_for(lambda: cycles_of(api, name)[0]["expired"] == 1, "the lease to run out")
    again = ask(api, name, worker)
    assert again["status"] == "accepted" and again["request_key"] != first["request_key"]
    # The first key died with its lease: only the new one reports for the place.
    stale = report(api, worker, first, seed=1)
    assert (stale.status, stale.error_code) == (403, "request_key_invalid")
    assert report(api, worker, again, seed=1).status == 200
    figures = cycles_of(api, name)[0]
    assert (figures["expired"], figures["reported"], figures["accepted"]) == (0, 1, 2)


# ----------------------------------------------------------------------------- restarts


def database_url(node) -> str:
    return node.env.get("DATABASE_URL") or f"sqlite:///{node.data_dir / 'node.db'}"


@pytest.mark.parametrize("backend", database_backends())
def test_a_cycle_at_its_goal_when_the_node_died_closes_on_restart(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    node.kill()
    # The crash came between a report reaching the goal and the close: stand for it by lowering
    # the goal to the one stored report while the Node is down.
    engine = create_engine(database_url(node).replace("postgresql://", "postgresql+pg8000://"))
    with Session(engine) as session:
        process = session.scalar(select(Process).where(Process.name == name))
        process.server_config = {**process.server_config, "max_diffs": 1}
        session.commit()
    engine.dispose()
    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    try:
        closed = wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed"
                          and cycles_of(api, name), "the restored cycle to close at its goal")
        assert closed[0]["reason"] == "goal" and closed[0]["new_checkpoint"] == 2
        again = report(api, worker, body, seed=1)
        assert (again.status, again.error_code) == (409, "report_duplicate")
    finally:
        node.stop()


@pytest.mark.parametrize("backend", database_backends())
def test_selection_figures_survive_kill_9(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    request_place(api, name)
    for _ in range(3):
        assert ask(api, name, authenticate(api, name))["reason"] == "cycle_full"
    node.kill()
    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    try:
        figures = cycles_of(api, name)[0]
        assert figures["rejected"] == {"cycle_full": 3} and figures["requests"] == 4
        assert figures["accepted"] == 1
    finally:
        node.stop()
