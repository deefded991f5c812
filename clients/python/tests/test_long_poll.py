"""The device side of the long-poll, against a stub Node that records what it was sent.

A real Node rarely shows these on demand: exactly which `wait` each request carried, a rejection's
`timeout` slept before the next request, and an `assignment_expired` answer in the middle of work.
"""

from __future__ import annotations

import threading

import pytest

import fedgrid
from fedgrid import Client

ACCEPTED = {"status": "accepted", "request_key": "key-1", "model": "stub", "version": "1.0",
            "model_id": 1, "plans": {"training_plan": 7}, "client_config": {}, "cycle": 1,
            "checkpoint": 1, "deadline": "2030-01-01T00:00:00Z", "timeout": 30.0}
EXPIRED = {"error": {"code": "assignment_expired", "status": 409,
                     "message": "the assignment's lease ran out; request a new place"}}


class RecordingEvent(threading.Event):
    """A stop event that records how long participate() slept, and never really sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


@pytest.fixture
def stub_node(stub_http_server):
    """Answers cycle-requests from ``state["answers"]`` in turn (then `training_finished`) and
    every checkpoint/plan download and report with ``state["expired"]``; records what came in."""
    state = {"answers": [], "requests": [], "downloads": [], "reports": 0, "authentications": 0}
    lock = threading.Lock()

    def post(request):
        if request.path == "/model-centric/authenticate":
            state["authentications"] += 1
            return 200, {"worker_id": "worker-1", "model": "stub", "version": "1.0",
                         "requires_speed_test": False}
        if request.path == "/model-centric/cycle-request":
            with lock:
                state["requests"].append(request.json())
                answers = state["answers"]
                answer = answers.pop(0) if answers else {
                    "status": "rejected", "reason": "training_finished", "model": "stub",
                    "version": "1.0"}
            return answer["error"]["status"] if "error" in answer else 200, answer
        if request.path == "/model-centric/report":
            state["reports"] += 1
            return 409, EXPIRED
        return 404, {"error": {"code": "not_found", "status": 404, "message": request.path}}

    def get(request):
        state["downloads"].append((request.path, request.query))
        if request.path in ("/model-centric/get-plan", "/model-centric/get-model"):
            return 409, EXPIRED
        return 404, {"error": {"code": "not_found", "status": 404, "message": request.path}}

    server = stub_http_server(get=get, post=post)
    server.state = state
    return server


def stub_job(client: Client):
    client._is_network = False  # the stub has no /status; it is a Node
    job = client.new_job("stub")
    job._stopped = RecordingEvent()
    return job


def test_participate_long_polls_and_sleeps_the_rejections_timeout(stub_node, digits):
    features, labels = digits
    stub_node.state["answers"] = [
        {"status": "rejected", "reason": "cycle_full", "timeout": 12.5},
        {"status": "rejected", "reason": "worker_cooling_down", "timeout": 40.0},
    ]
    with Client(stub_node.url) as client:
        job = stub_job(client)
        assert job.participate((features[:10], labels[:10])) == []
    requests = stub_node.state["requests"]
    # Every cycle-request long-polls with the default 25 s (the client's timeout is 60 s)...
    assert [r.get("wait") for r in requests] == [25.0, 25.0, 25.0]
    assert all(r["worker_id"] == "worker-1" and r["model"] == "stub" for r in requests)
    # ...and a rejection that came back anyway is still slept before the next request.
    assert job._stopped.waits == [12.5, 40.0]


def test_participate_never_waits_more_than_half_the_request_timeout(stub_node, digits):
    features, labels = digits
    with Client(stub_node.url, timeout=10) as client:
        job = stub_job(client)
        assert job.default_wait() == 5.0
        job.participate((features[:10], labels[:10]))
    assert [r.get("wait") for r in stub_node.state["requests"]] == [5.0]


def test_participate_takes_an_explicit_wait(stub_node, digits):
    features, labels = digits
    with Client(stub_node.url) as client:
        stub_job(client).participate((features[:10], labels[:10]), wait=0)
    assert [r.get("wait") for r in stub_node.state["requests"]] == [0.0]


def test_request_sends_wait_only_when_asked(stub_node):
    stub_node.state["answers"] = [{"status": "rejected", "reason": "cycle_full", "timeout": 3}] * 2
    with Client(stub_node.url) as client:
        job = stub_job(client)
        with pytest.raises(fedgrid.Rejected):
            job.request()
        with pytest.raises(fedgrid.Rejected) as caught:
            job.request(wait=7)
    first, second = stub_node.state["requests"]
    assert "wait" not in first
    assert second["wait"] == 7.0
    assert (caught.value.reason, caught.value.timeout) == ("cycle_full", 3.0)


@pytest.mark.parametrize("wait", [-1, 31, 30.5])
def test_request_refuses_a_wait_outside_the_protocol(stub_node, wait):
    with Client(stub_node.url) as client, pytest.raises(ValueError, match="between 0 and 30"):
        stub_job(client).request(wait=wait)
    assert stub_node.state["requests"] == []


def test_request_refuses_a_wait_the_request_timeout_could_cut_short(stub_node):
    with Client(stub_node.url, timeout=20) as client, pytest.raises(ValueError, match="timeout"):
        stub_job(client).request(wait=15)
    assert stub_node.state["requests"] == []


def test_an_expired_assignment_is_dropped_and_participate_asks_again(stub_node, digits):
    features, labels = digits
    # Accepted, but the plan download says the lease ran out: the work is dropped (no report)
    # and the device asks again at once, long-polling, without sleeping.
    stub_node.state["answers"] = [dict(ACCEPTED)]
    with Client(stub_node.url) as client:
        job = stub_job(client)
        assert job.participate((features[:10], labels[:10])) == []
    assert [r.get("wait") for r in stub_node.state["requests"]] == [25.0, 25.0]
    assert [path for path, _ in stub_node.state["downloads"]] == ["/model-centric/get-plan"]
    assert stub_node.state["reports"] == 0
    assert job._stopped.waits == []


def test_a_report_refused_as_expired_raises_assignment_expired(stub_node):
    with Client(stub_node.url) as client:
        job = stub_job(client)
        job.worker_id = "worker-1"
        assignment = fedgrid.Assignment(job, dict(ACCEPTED))
        with pytest.raises(fedgrid.AssignmentExpired) as caught:
            assignment.report(diff=b"not-checked-by-the-stub", num_samples=1)
    assert caught.value.code == "assignment_expired"
    assert not assignment.reported


# ----------------------------------------------------------------------------- with a real Node


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_held_long_poll_does_not_hold_up_a_job_sharing_the_client(sdk_node, host, digits,
                                                                     transport):
    # One place per cycle. `first` takes it; `second` long-polls on the same Client and is held
    # (cycle_full) until first's report closes cycle 1. That report must not queue behind the
    # held request (one WebSocket for both would make it wait out the whole `wait`, after which
    # second is rejected instead of getting cycle 2's place).
    name = host(server_config={"max_diffs": 1, "max_workers": 1, "cycle_length": 600})
    features, labels = digits
    url = sdk_node.url if transport == "http" else sdk_node.ws_url
    outcome: dict[str, object] = {}
    with Client(url) as client, fedgrid.Admin(sdk_node.url, sdk_node.admin_token) as admin:
        first, second = client.new_job(name), client.new_job(name)
        assignment = first.request()
        second.authenticate()

        def long_poll() -> None:
            try:
                outcome["answer"] = second.request(wait=20)
            except fedgrid.FedgridError as exc:
                outcome["answer"] = exc

        thread = threading.Thread(target=long_poll, daemon=True)
        thread.start()
        # Wait on the Node's state, not the clock: its count of cycle 1's requests reaches 2
        # once the long-poll arrived (and is being held, since the only place is taken).
        for _ in range(2000):
            if admin.cycles(name)[0]["requests"] >= 2 or not thread.is_alive():
                break
        assert admin.cycles(name)[0]["requests"] == 2
        assignment.report(assignment.train((features[:20], labels[:20])))
        thread.join(timeout=60)
        assert not thread.is_alive(), "the long-poll never returned"
    answer = outcome["answer"]
    assert isinstance(answer, fedgrid.Assignment), f"the held request ended with {answer!r}"
    assert answer.cycle == 2


def test_participate_over_websocket_wakes_on_the_nodes_push(sdk_node, host, digits):
    # One place per cycle, held by `holder`. The device in participate() is rejected after a
    # short long-poll and told to come back in about a minute (nothing observed yet). When the
    # holder's report opens cycle 2 the Node pushes place-available to the device's socket: it
    # must take cycle 2's place now, not a minute later.
    name = host(server_config={"max_diffs": 1, "max_workers": 1, "cycle_length": 600,
                               "num_cycles": 2})
    features, labels = digits
    with Client(sdk_node.url) as holder_client, Client(sdk_node.ws_url) as device_client, \
            fedgrid.Admin(sdk_node.url, sdk_node.admin_token) as admin:
        holder = holder_client.new_job(name).request()
        device = device_client.new_job(name)
        outcome: dict[str, object] = {}

        def participate() -> None:
            try:
                outcome["reports"] = device.participate((features[:40], labels[:40]), cycles=1,
                                                        wait=0.2)
            except fedgrid.FedgridError as exc:
                outcome["reports"] = exc

        thread = threading.Thread(target=participate, daemon=True)
        thread.start()
        for _ in range(2000):  # until the Node counted the device's rejection (state, not time)
            if admin.cycles(name)[0]["rejected"].get("cycle_full") or not thread.is_alive():
                break
        assert admin.cycles(name)[0]["rejected"] == {"cycle_full": 1}
        holder.report(holder.train((features[:20], labels[:20])))
        thread.join(timeout=30)  # well under the minute the rejection said to sleep
        assert not thread.is_alive(), "participate() slept through the push"
    assert [r["cycle"] for r in outcome["reports"]] == [2]


@pytest.mark.parametrize(("code", "status"), [("worker_unknown", 404),
                                              ("worker_process_mismatch", 403)])
def test_a_worker_unknown_cycle_request_authenticates_again_once(stub_node, code, status):
    refused = {"error": {"code": code, "status": status, "message": "authenticate again"}}
    stub_node.state["answers"] = [refused, refused]
    with Client(stub_node.url) as client:
        job = stub_job(client)
        with pytest.raises(fedgrid.WorkerUnknown) as caught:
            job.request()
    assert caught.value.code == code
    assert stub_node.state["authentications"] == 2  # the first, and once more: not again
    assert len(stub_node.state["requests"]) == 2
