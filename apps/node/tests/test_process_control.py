"""Pause, resume, stop and delete a hosted process, against real Nodes on both database backends."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime

import pytest
import requests
import websocket

from fedgrid.diff_encoding import encode_diff
from fedgrid_plans import tensors
from tests.support.api_client import HttpApi, WsApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import cycles_of, host, report, request_place, wait_for
from .test_cycle_liveness import in_thread

CONTROLS = ("pause-process", "resume-process", "stop-process", "delete-process")


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def control(api, event, name, **fields):
    return api.call(event, {"name": name, "version": "1", **fields}, admin=True)


def status_of(api, name):
    listed = api.call("processes", admin=True).body["processes"]
    return next(p["status"] for p in listed if p["model"] == name)


def _moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso.removesuffix("Z"))


def test_pause_keeps_the_open_cycle_and_counts_the_reports_of_accepted_devices(api):
    name = unique_name()
    host(api, name, max_diffs=2, min_diffs=1, cycle_length=600)
    places = [request_place(api, name) for _ in range(2)]
    assert all(body["status"] == "accepted" for _, body in places)

    paused = control(api, "pause-process", name)
    assert paused.status == 200, paused.body
    assert paused.body["process_status"] == "paused" and paused.body["changed"] is True
    assert status_of(api, name) == "paused"
    # Monitoring sees it too: one status series per process is 1.
    exposed = requests.get(f"{api.url}/metrics", timeout=10,
                           headers={"Authorization": f"Bearer {api.admin_token}"}).text
    labels = f'model="{name}",version="1"'
    assert f'fedgrid_process_status{{{labels},status="paused"}} 1.0' in exposed
    assert f'fedgrid_process_status{{{labels},status="active"}} 0.0' in exposed

    # Newcomers are told to come back, with a time to do so (at most 30 s, jittered).
    _, turned_away = request_place(api, name)
    assert turned_away["status"] == "rejected" and turned_away["reason"] == "process_paused"
    assert 1 <= turned_away["timeout"] <= 30 * 1.25
    # A device that already holds a place and asks again (its answer was lost) gets it back.
    _, again = request_place(api, name, worker_id=places[0][0])
    assert again["status"] == "accepted" and again["request_key"] == places[0][1]["request_key"]

    # The devices already training report, and are counted; reaching the goal closes nothing.
    for seed, (worker, body) in enumerate(places):
        assert report(api, worker, body, seed=seed).status == 200
    cycles = cycles_of(api, name)
    assert len(cycles) == 1 and cycles[0]["status"] == "open" and cycles[0]["reported"] == 2

    # Pausing again changes nothing.
    again = control(api, "pause-process", name)
    assert again.status == 200 and again.body["changed"] is False

    resumed = control(api, "resume-process", name)
    assert resumed.status == 200 and resumed.body["process_status"] == "active"
    # Resumed, the cycle that reached its goal during the pause closes with both reports.
    closed = wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed" and cycles_of(api, name),
                      "cycle 1 to close at its goal after the resume")
    assert closed[0]["reported"] == 2 and closed[0]["new_checkpoint"] == 2
    _, body = request_place(api, name)
    assert body["status"] == "accepted" and body["cycle"] == 2 and body["checkpoint"] == 2


def test_pause_stops_the_deadline_clock_and_resume_gives_a_fresh_deadline(api):
    name = unique_name()
    # Short enough to pass while paused, long enough that the place is still held at the pause.
    host(api, name, max_diffs=3, min_diffs=1, cycle_length=3.0)
    worker, body = request_place(api, name)
    assert control(api, "pause-process", name).status == 200
    deadline = _moment(cycles_of(api, name)[0]["deadline"])
    # The deadline passes while paused; the cycle stays open and the place stays the device's.
    wait_for(lambda: datetime.utcnow() > deadline and cycles_of(api, name)[0]["deadline"],
             "the paused cycle's deadline to pass")
    cycles = cycles_of(api, name)
    assert len(cycles) == 1 and cycles[0]["status"] == "open" and cycles[0]["dropped"] == 0
    assert report(api, worker, body, seed=1).status == 200

    resumed_at = datetime.utcnow()
    assert control(api, "resume-process", name).status == 200
    assert _moment(cycles_of(api, name)[0]["deadline"]) > resumed_at
    # The fresh deadline closes it, with the report made during the pause.
    closed = wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed" and cycles_of(api, name),
                      "the fresh deadline to close cycle 1")
    assert closed[0]["reason"] == "deadline" and closed[0]["reported"] == 1


def test_leases_do_not_run_out_while_paused_and_are_renewed_at_resume(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=1, cycle_length=600, assignment_lease=3.0)
    (early, early_body), (late, late_body) = request_place(api, name), request_place(api, name)
    assert control(api, "pause-process", name).status == 200
    report_by = max(_moment(early_body["report_by"]), _moment(late_body["report_by"]))
    wait_for(lambda: datetime.utcnow() > report_by, "both leases' end to pass")
    assert cycles_of(api, name)[0]["expired"] == 0
    # Past its lease, but the clock was stopped: the report counts.
    assert report(api, early, early_body, seed=1).status == 200

    resumed_at = datetime.utcnow()
    assert control(api, "resume-process", name).status == 200
    _, renewed = request_place(api, name, worker_id=late)
    assert renewed["request_key"] == late_body["request_key"]
    assert _moment(renewed["report_by"]) > resumed_at
    # The clock runs again: the renewed lease runs out and the place is freed.
    wait_for(lambda: cycles_of(api, name)[0]["expired"] == 1, "the renewed lease to run out")


def test_the_controls_answer_over_websocket_too(shared_node, api):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    ws = WsApi(shared_node.ws_url, shared_node.admin_token)
    try:
        paused = ws.call("pause-process", {"name": name}, admin=True)
        assert paused.status == 200 and paused.body["process_status"] == "paused"
        refused = ws.call("delete-process", {"name": name})
        assert refused.error_code == "admin_token_required"
        stopped = ws.call("stop-process", {"name": name, "version": "1"}, admin=True)
        assert stopped.body["process_status"] == "stopped"
        assert ws.call("delete-process", {"name": name}, admin=True).body["deleted"] is True
    finally:
        ws.close()


def test_pausing_answers_a_held_long_poll_at_once(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    request_place(api, name)  # takes the only place
    waiting = api.call("authenticate", {"model_name": name}).body["worker_id"]
    answers = []
    held = HttpApi(api.url, api.admin_token)
    started = time.monotonic()
    thread = threading.Thread(target=lambda: answers.append(held.call(
        "cycle-request", {"worker_id": waiting, "model": name, "wait": 30})))
    thread.start()
    try:
        # Held until a place opens: nothing opens, so only the pause can answer it.
        wait_for(lambda: cycles_of(api, name)[0]["requests"] >= 2, "the long-poll to be held")
        assert control(api, "pause-process", name).status == 200
        thread.join(timeout=25)
        assert answers, "the held long-poll was not answered when the process paused"
        assert time.monotonic() - started < 25
        assert answers[0].body["status"] == "rejected" and answers[0].body["reason"] == "process_paused"
    finally:
        thread.join()
        held.close()


def test_a_websocket_turned_away_while_paused_is_pushed_at_resume(api, shared_node):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    assert control(api, "pause-process", name).status == 200
    worker = api.call("authenticate", {"model_name": name}).body["worker_id"]
    ws = websocket.create_connection(shared_node.ws_url, timeout=60)
    try:
        ws.send(json.dumps({"type": "model-centric/cycle-request", "request_id": 1,
                            "data": {"worker_id": worker, "model": name, "notify": True}}))
        assert json.loads(ws.recv())["data"]["reason"] == "process_paused"
        assert control(api, "resume-process", name).status == 200
        push = json.loads(ws.recv())
        assert push["type"] == "model-centric/place-available"
        assert push["data"]["model"] == name
    finally:
        ws.close()


def test_stop_with_a_quorum_aggregates_the_open_cycle_and_ends_the_process(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=1, cycle_length=600)
    worker, body = request_place(api, name)
    late, late_body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200

    stopped = control(api, "stop-process", name)
    assert stopped.status == 200, stopped.body
    assert stopped.body["process_status"] == "stopped" and stopped.body["changed"] is True
    assert stopped.body["cycle"] == {"sequence": 1, "status": "completed", "checkpoint": 2}
    cycles = cycles_of(api, name)
    assert [c["status"] for c in cycles] == ["completed"] and cycles[0]["reason"] == "stopped"
    assert cycles[0]["dropped"] == 1
    assert api.call("checkpoints", {"name": name}, admin=True).body["latest"] == 2

    # The device still training hears its cycle closed; newcomers that training is over.
    refused = report(api, late, late_body, seed=2)
    assert (refused.status, refused.error_code) == (409, "cycle_closed")
    _, body = request_place(api, name)
    assert body["status"] == "rejected" and body["reason"] == "training_stopped"
    assert status_of(api, name) == "stopped"

    again = control(api, "stop-process", name)
    assert again.status == 200 and again.body["changed"] is False
    for event in ("pause-process", "resume-process"):
        refused = control(api, event, name)
        assert (refused.status, refused.error_code) == (409, "process_state_conflict")
        assert refused.body["error"]["details"]["process_status"] == "stopped"


def test_stop_without_a_quorum_abandons_the_open_cycle(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=2, cycle_length=600)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    stopped = control(api, "stop-process", name)
    assert stopped.body["cycle"] == {"sequence": 1, "status": "abandoned", "checkpoint": 1}
    cycle = cycles_of(api, name)[0]
    assert cycle["abandoned_because"] == "no_quorum" and cycle["reported"] == 1
    assert api.call("checkpoints", {"name": name}, admin=True).body["latest"] == 1


def test_stop_while_paused_counts_the_reports_made_during_the_pause(api):
    name = unique_name()
    host(api, name, max_diffs=3, min_diffs=2, cycle_length=600)
    places = [request_place(api, name) for _ in range(2)]
    assert control(api, "pause-process", name).status == 200
    for seed, (worker, body) in enumerate(places):
        assert report(api, worker, body, seed=seed).status == 200
    stopped = control(api, "stop-process", name)
    assert stopped.body["cycle"]["status"] == "completed" and stopped.body["cycle"]["checkpoint"] == 2


def test_a_finished_process_cannot_be_paused_or_stopped_but_can_be_deleted(api):
    name = unique_name()
    host(api, name, max_diffs=1, num_cycles=1, cycle_length=600)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    wait_for(lambda: status_of(api, name) == "finished", "the process to finish")
    for event in ("pause-process", "resume-process", "stop-process"):
        refused = control(api, event, name)
        assert (refused.status, refused.error_code) == (409, "process_state_conflict"), event
        assert refused.body["error"]["details"]["process_status"] == "finished"
    assert control(api, "delete-process", name).status == 200


def test_delete_removes_everything_and_the_name_can_be_hosted_again(api):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    worker, body = request_place(api, name)
    refused = control(api, "delete-process", name)
    assert (refused.status, refused.error_code) == (409, "process_state_conflict")
    assert refused.body["error"]["details"]["process_status"] == "active"

    assert control(api, "stop-process", name).status == 200
    deleted = control(api, "delete-process", name)
    assert deleted.status == 200 and deleted.body == {
        "status": "success", "model": name, "version": "1", "deleted": True}
    assert name not in [p["model"] for p in api.call("processes", admin=True).body["processes"]]
    gone = control(api, "delete-process", name)
    assert (gone.status, gone.error_code) == (404, "process_unknown")
    assert api.call("authenticate", {"model_name": name}).error_code == "process_unknown"
    again = api.call("cycle-request", {"worker_id": worker, "model": name})
    assert (again.status, again.error_code) == (404, "worker_unknown")

    # The same name and version, hosted anew with another checkpoint and policy: nothing of the
    # deleted process (cached checkpoints, configs) leaks into it, even where ids are reused.
    plan, checkpoint = logistic_regression()
    fresh = tensors.encode(random_diff(checkpoint, seed=42, scale=1.0))
    answer = api.call("host-training", {
        "name": name, "version": "1", "client_config": {"batch_size": 8, "diff_encoding": "float16"},
        "server_config": {"max_diffs": 1, "cycle_length": 600}},
        blobs={"model": fresh, "plans/training_plan": plan}, admin=True)
    assert answer.status == 200, answer.body
    worker, body = request_place(api, name)
    assert body["status"] == "accepted" and body["cycle"] == 1
    model = api.call("get-model", {"worker_id": worker, "request_key": body["request_key"]})
    assert model.content == fresh
    # Its devices send float16 diffs, as its client_config says (not the deleted one's float32).
    half = encode_diff(random_diff(checkpoint, seed=3), "float16")
    sent = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                               "num_samples": 10}, blobs={"diff": half})
    assert sent.status == 200, sent.body
    # max_diffs 1 now (2 before): one report closes the cycle.
    wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed", "the new cycle 1 to close")


def test_force_deletes_an_active_process_and_answers_its_waiting_devices(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    worker, body = request_place(api, name)
    deleted = control(api, "delete-process", name, force=True)
    assert deleted.status == 200, deleted.body
    # Its assignment is gone with it (the SDKs drop the work and ask again), its worker too (they
    # authenticate again), and the model is unknown.
    refused = report(api, worker, body, seed=1)
    assert (refused.status, refused.error_code) == (403, "request_key_invalid")
    again = api.call("cycle-request", {"worker_id": worker, "model": name})
    assert (again.status, again.error_code) == (404, "worker_unknown")
    assert api.call("authenticate", {"model_name": name}).error_code == "process_unknown"
    assert api.call("cycles", {"name": name}, admin=True).error_code == "process_unknown"


def test_controls_need_the_admin_token(api):
    name = unique_name()
    host(api, name, max_diffs=2, cycle_length=600)
    for event in CONTROLS:
        missing = api.call(event, {"name": name})
        assert (missing.status, missing.error_code) == (401, "admin_token_required"), event
        wrong = api.call(event, {"name": name}, authorization="Bearer wrong")
        assert (wrong.status, wrong.error_code) == (403, "admin_token_invalid"), event
    assert status_of(api, name) == "active"
    unknown = control(api, "pause-process", unique_name())
    assert (unknown.status, unknown.error_code) == (404, "process_unknown")
    typo = api.call("delete-process", {"name": name, "forse": True}, admin=True)
    assert (typo.status, typo.error_code) == (400, "invalid_request")


@pytest.mark.parametrize("backend", database_backends())
def test_a_pause_survives_a_restart(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=1, min_diffs=1, cycle_length=3.0)
    worker, body = request_place(api, name)
    assert control(api, "pause-process", name).status == 200
    deadline = _moment(cycles_of(api, name)[0]["deadline"])
    node.kill()
    restarted = node.restart()
    try:
        api = HttpApi(restarted.url, restarted.admin_token)
        wait_for(lambda: datetime.utcnow() > deadline, "the paused cycle's deadline to pass")
        _, turned_away = request_place(api, name)
        assert turned_away["reason"] == "process_paused"
        # Restored paused: the report reaches the goal, but the cycle stays open until resumed.
        assert report(api, worker, body, seed=1).status == 200
        cycles = cycles_of(api, name)
        assert len(cycles) == 1 and cycles[0]["status"] == "open" and cycles[0]["reported"] == 1
        assert control(api, "resume-process", name).status == 200
        wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed", "cycle 1 to close")
        assert "Traceback" not in restarted.log()
    finally:
        restarted.stop()


def test_the_network_hears_a_paused_process_as_waiting_and_a_stopped_one_as_finished(tmp_path):
    """What a heartbeat tells the Network's directory (in-process, from the Node's database)."""
    import io

    from fedgrid_node.app import create_app
    from fedgrid_node.config import NodeConfig
    from fedgrid_node.network_membership import collect_heartbeat

    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin"))
    state = app.extensions["fedgrid"]
    client = app.test_client()
    admin = {"Authorization": "Bearer admin"}
    try:
        plan, checkpoint = logistic_regression()
        for name in ("paused", "stopped", "running"):
            hosted = client.post(
                "/model-centric/host-training", headers=admin,
                data={"name": name, "version": "1", "client_config": "{}",
                      "server_config": json.dumps({"max_diffs": 2, "cycle_length": 300}),
                      "model": (io.BytesIO(checkpoint), "model.safetensors"),
                      "plans[training_plan]": (io.BytesIO(plan), "plan.fgplan")})
            assert hosted.status_code == 200, hosted.get_json()
        for event, name in (("pause-process", "paused"), ("stop-process", "stopped")):
            answer = client.post(f"/model-centric/{event}", json={"name": name}, headers=admin)
            assert answer.status_code == 200, answer.get_json()
        statuses = {p["name"]: p["status"] for p in collect_heartbeat(state.db)["processes"]}
        assert statuses == {"paused": "waiting", "stopped": "finished", "running": "open"}
    finally:
        state.engine.stop()
        state.db.dispose()


def test_a_stop_racing_a_crowd_of_reports_aggregates_exactly_the_acknowledged_ones(api):
    """30 devices report at once while the researcher stops the process: every report answered
    `success` is in the stopped cycle's aggregate, every other one was refused with a code, and
    none is counted twice (on both backends, through the shared Node)."""
    name = unique_name()
    host(api, name, max_diffs=1000, max_workers=1000, min_diffs=1, cycle_length=600)
    places = [request_place(api, name) for _ in range(30)]
    start = threading.Barrier(len(places) + 1)

    def send(index):
        own = HttpApi(api.url, api.admin_token)
        start.wait()
        try:
            return report(own, *places[index], seed=index).error_code or "success"
        finally:
            own.close()

    joins = []
    for index in range(len(places)):
        joins.append(in_thread(send, index))
    start.wait()
    stopped = control(api, "stop-process", name)
    assert stopped.status == 200, stopped.body
    outcomes = Counter(join() for join in joins)
    assert set(outcomes) <= {"success", "cycle_closed"}, outcomes
    closed = cycles_of(api, name)[0]
    # Aggregated if at least one report came in before the stop (min_diffs 1), else abandoned.
    expected = "completed" if outcomes["success"] else "abandoned"
    assert (closed["status"], closed["reason"]) == (expected, "stopped"), (closed, outcomes)
    assert closed["reported"] == outcomes["success"], (closed, outcomes)
    # A resend of any of them is refused by its assignment's status: nothing enters afterwards.
    for index in range(3):
        assert report(api, *places[index], seed=index).error_code in ("report_duplicate",
                                                                       "cycle_closed")
