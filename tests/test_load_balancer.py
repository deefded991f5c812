"""The deployment's HAProxy (deploy/haproxy/haproxy.cfg, run on loopback by
tests/support/load_balancer.py) in front of two real Node processes.

Transport only: the two Nodes are independent (a database each, SQLite or PostgreSQL), so what is
checked is what the balancer carries and how it shares and fails over, not the replicas' shared
engine. Through the balancer: JSON routes and their errors, requests alternating between the Nodes,
a WebSocket session (which stays on its Node), bodies up to the Node's 64 MiB limit and the Node's
own 413 above it, and `kill -9` of one Node: no request fails, about a second later the health
check has taken it out, its WebSockets end and new ones reach the other Node. A last test, against
stub upstreams, pins down which requests HAProxy may send twice.
"""

from __future__ import annotations

import itertools
import time

import pytest
import requests
import websocket

from tests.support.api_client import HttpApi, WsApi
from tests.support.databases import database_backends
from tests.support.load_balancer import LoadBalancer
from tests.support.models import logistic_regression, unique_name
from tests.support.stub_upstream import StubUpstream

MIB = 1024 * 1024
NODE_LIMIT = 64 * MIB  # the Node's default --max-body-mb


@pytest.fixture(params=database_backends())
def replicas(request, node_factory):
    return [node_factory(request.param, extra_args=["--id", name])
            for name in ("replica-a", "replica-b")]


@pytest.fixture
def balancer(replicas, tmp_path):
    with LoadBalancer([node.url for node in replicas], work_dir=tmp_path / "haproxy") as running:
        yield running
    # A Node that answered through the balancer never logged a failure of its own.
    for node in replicas:
        assert "Traceback" not in node.log(), node.log()


def served_by(url: str, session: requests.Session | None = None) -> str:
    answer = (session or requests).get(f"{url}/status", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["node_id"]


def test_json_routes_pass_through_and_requests_alternate_between_the_nodes(balancer):
    # New connections and one kept-alive connection alike: each request is balanced on its own.
    fresh = [served_by(balancer.url) for _ in range(6)]
    with requests.Session() as session:
        kept_alive = [served_by(balancer.url, session) for _ in range(6)]
    for sequence in (fresh, kept_alive):
        assert set(sequence) == {"replica-a", "replica-b"}
        assert all(a != b for a, b in itertools.pairwise(sequence)), sequence

    health = requests.get(f"{balancer.url}/health", timeout=10)
    assert health.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    # The Nodes' own JSON errors come back unchanged, status and code.
    missing = requests.get(f"{balancer.url}/no-such-route", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    refused = requests.post(f"{balancer.url}/model-centric/processes", json={}, timeout=10)
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    unauthorized = requests.get(f"{balancer.url}/model-centric/processes", timeout=10)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "admin_token_required"
    # The balancer's own health answer, for the container's health check.
    assert requests.get(f"{balancer.url}/balancer-health", timeout=10).status_code == 200


def test_a_websocket_session_is_carried_and_stays_on_its_node(replicas, balancer):
    # The same model hosted on each Node (directly): a device's worker id exists only on the Node
    # that issued it, so the whole session must stay on one Node for the events below to work.
    plan, checkpoint = logistic_regression()
    name = unique_name("lb")
    for node in replicas:
        hosted = HttpApi(node.url, node.admin_token).call(
            "host-training",
            {"name": name, "version": "1.0", "client_config": {"batch_size": 8, "lr": 0.1},
             "server_config": {"max_diffs": 10}},
            blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
        assert hosted.status == 200, hosted.body

    for _ in range(2):  # two sockets: one on each Node
        device = WsApi(balancer.ws_url, "")
        try:
            worker = device.call("authenticate", {"model_name": name, "model_version": "1.0"})
            assert worker.status == 200, worker.body
            cycle = device.call("cycle-request", {"worker_id": worker.body["worker_id"],
                                                  "model": name, "version": "1.0"})
            assert cycle.status == 200 and cycle.body["status"] == "accepted", cycle.body
            # A binary frame back: the checkpoint, byte for byte.
            model = device.call("get-model", {"worker_id": worker.body["worker_id"],
                                              "request_key": cycle.body["request_key"],
                                              "model_id": cycle.body["model_id"]})
            assert model.content == checkpoint
        finally:
            device.close()
    # One device accepted on each Node: the two sockets went to different Nodes.
    for node in replicas:
        cycles = HttpApi(node.url, node.admin_token).call("cycles", {"name": name}, admin=True)
        assert cycles.status == 200, cycles.body
        assert cycles.body["cycles"][0]["accepted"] == 1, cycles.body


def test_bodies_up_to_the_node_limit_pass_and_the_node_refuses_larger_ones(balancer):
    url = f"{balancer.url}/model-centric/speed-test"
    download = requests.get(url, params={"size": 8 * MIB}, timeout=60)
    assert download.status_code == 200 and len(download.content) == 8 * MIB
    for size in (8 * MIB, NODE_LIMIT):
        upload = requests.post(url, data=b"\x01" * size, timeout=120)
        assert upload.json() == {"status": "success", "received": size}
    # One byte over: the Node's own refusal, as JSON, not a balancer error page.
    too_large = requests.post(url, data=b"\x01" * (NODE_LIMIT + 1), timeout=120)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "body_too_large"


def test_after_kill_9_of_one_node_every_request_is_served_by_the_other(replicas, balancer):
    killed, survivor = replicas
    assert {served_by(balancer.url) for _ in range(2)} == {"replica-a", "replica-b"}
    killed.kill()
    killed_at = time.monotonic()

    # Until the health check takes the dead Node out, requests that HAProxy sends it find no one
    # listening (a connection failure, so never sent) and are retried on the survivor: none fails.
    # Each round also asks for the state, so this loop ends as soon as the Node is DOWN.
    served = []
    while balancer.server_states()[balancer.server_for(killed.url)]["status"] != "DOWN":
        served.append(served_by(balancer.url))
        upload = requests.post(f"{balancer.url}/model-centric/speed-test", data=b"x" * 1000,
                               timeout=10)
        assert upload.json()["received"] == 1000
        # Marked down within about a second (two failed checks, 500 ms apart).
        assert time.monotonic() - killed_at < 3, "the dead Node was not marked DOWN in 3 s"
    assert set(served) <= {"replica-b"}
    assert balancer.server_states()[balancer.server_for(survivor.url)]["status"] == "UP"

    with requests.Session() as session:
        assert [served_by(balancer.url, session) for _ in range(20)] == ["replica-b"] * 20
    assert requests.get(f"{balancer.url}/balancer-health", timeout=10).status_code == 200

    # With no Node left, the balancer answers at once, in the Nodes' error format, instead of
    # holding devices.
    survivor.kill()
    balancer.wait_status(survivor.url, "DOWN", timeout=5)
    for path in ("/status", "/balancer-health"):
        refused = requests.get(f"{balancer.url}{path}", timeout=10)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        assert refused.json()["error"]["code"] == "replica_unavailable"
    assert "Server nodes/node1 is DOWN" in balancer.log()


def test_a_websocket_on_a_killed_node_ends_and_a_new_one_reaches_the_other(replicas, balancer):
    def exchange(device: WsApi) -> str:
        answer = device.call("authenticate", {"model_name": "not-hosted", "model_version": "1"})
        return answer.error_code

    # Two sockets opened one after the other: the second goes to the Node without a connection.
    devices = [WsApi(balancer.ws_url, "") for _ in range(2)]
    try:
        assert [exchange(device) for device in devices] == ["process_unknown"] * 2
        killed = replicas[0]
        killed.kill()
        # The socket on the killed Node ends (the balancer closes the device's side of the
        # tunnel); the other one goes on working.
        outcomes = []
        for device in devices:
            try:
                outcomes.append(exchange(device))
            except (websocket.WebSocketException, OSError):
                outcomes.append("ended")
        assert sorted(outcomes) == ["ended", "process_unknown"]
        # The device reconnects through the same URL and reaches the survivor.
        balancer.wait_status(killed.url, "DOWN")
        again = WsApi(balancer.ws_url, "")
        devices.append(again)
        assert exchange(again) == "process_unknown"
    finally:
        for device in devices:
            try:
                device.close()
            except (websocket.WebSocketException, OSError):
                pass  # the one whose Node was killed


@pytest.fixture
def stubs():
    started = [StubUpstream("dropping", drop=True), StubUpstream("answering", drop=False)]
    yield started
    for stub in started:
        stub.stop()


def test_only_requests_that_never_reached_a_node_or_gets_are_sent_again(stubs, tmp_path):
    """A replica that dies after reading a POST (a report, a cycle-request) may have acted on it:
    HAProxy must answer the device 502 rather than send the POST to another replica, where it
    would be counted a second time. A GET is safe to send again, and is."""
    dropping, answering = stubs
    with LoadBalancer([dropping.url, answering.url], work_dir=tmp_path / "haproxy") as balancer:
        posts = [requests.post(f"{balancer.url}/model-centric/report", params={"n": n},
                               data=b"diff", timeout=10) for n in range(6)]
        gets = [requests.get(f"{balancer.url}/model-centric/get-model", params={"n": n},
                             timeout=10) for n in range(6)]

    # Every POST reached exactly one upstream, once: those the dropping one read were not resent.
    arrived = [r.path for r in dropping.requests("POST") + answering.requests("POST")]
    assert sorted(arrived) == sorted(f"/model-centric/report?n={n}" for n in range(6))
    dropped = len(dropping.requests("POST"))
    assert dropped >= 1  # round robin sent some of them there
    assert sorted(p.status_code for p in posts) == [200] * (6 - dropped) + [502] * dropped
    assert {p.json()["error"]["code"] for p in posts if p.status_code == 502} == {"replica_failed"}
    # Every GET was answered: the ones the dropping upstream swallowed were sent to the other.
    assert dropping.requests("GET") and all(g.status_code == 200 for g in gets)
    assert {g.json()["upstream"] for g in gets} == {"answering"}
    # The Nodes learn the device's address.
    assert {r.headers.get("x-forwarded-for") for r in answering.requests()} == {"127.0.0.1"}
