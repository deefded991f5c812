"""The Network's API in-process (Flask's test client): registry, impersonation, health, routing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from openapi_spec_validator import validate

from fedgrid_network.app import create_app
from fedgrid_network.config import NetworkConfig
from fedgrid_network.db.models import utcnow
from tests.support.databases import database_backends, make_database_url

SECRET = "registration-secret"
ADMIN = "network-admin"


class ManualClock:
    """The registry's clock, moved only by the test: a slow machine cannot make a Node miss its
    heartbeats between two requests, and a test of missed heartbeats needs no sleep."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture(params=database_backends())
def network(request, tmp_path, clock):
    database = make_database_url(request.param, tmp_path)
    config = NetworkConfig(database_url=database.url, data_dir=tmp_path, admin_token=ADMIN,
                           registration_secret=SECRET, heartbeat_interval=0.2, offline_after=0.6)
    app = create_app(config)
    app.extensions["fedgrid_network"].registry.clock = clock
    yield app.test_client()
    app.extensions["fedgrid_network"].db.dispose()
    database.drop()


def join(client, node_id, address=None, token=None, secret=SECRET, replica=None):
    body = {"node_id": node_id, "address": address or f"http://{node_id}:5000"}
    if token:
        body["node_token"] = token
    if replica is not None:
        body["replica"] = replica
    return client.post("/join", json=body, headers={"Authorization": f"Bearer {secret}"})


def beat(client, node_id, token, processes=(), load=0, **extra):
    return client.post("/heartbeat", json={"node_id": node_id, "processes": list(processes),
                                           "devices": load, "load": load, **extra},
                       headers={"Authorization": f"Bearer {token}"})


def process(name="mnist", version="1", status="open", cycle=1):
    return {"name": name, "version": version, "status": status, "cycle": cycle, "checkpoint": cycle,
            "accepted": 0, "reported": 0, "deadline": "2030-01-01T00:00:00Z"}


def test_status_says_network_and_errors_are_json(network):
    status = network.get("/status").get_json()
    assert status["kind"] == "network" and status["nodes"]["total"] == 0
    for response, code in (
        (network.get("/no-such-route"), "not_found"),
        (network.put("/route"), "method_not_allowed"),
        (network.post("/join", data="{", content_type="application/json",
                      headers={"Authorization": f"Bearer {SECRET}"}), "invalid_json"),
        (network.get("/route"), "invalid_request"),
    ):
        body = response.get_json()
        assert response.content_type == "application/json", response.data[:200]
        assert body["error"]["code"] == code and body["error"]["status"] == response.status_code


def test_join_heartbeat_and_route_to_the_least_loaded_healthy_node(network):
    tokens = {}
    for node_id in ("alice", "bob", "charlie"):
        answer = join(network, node_id)
        assert answer.status_code == 200, answer.get_json()
        tokens[node_id] = answer.get_json()["node_token"]
        assert answer.get_json()["heartbeat_interval"] == 0.2
    assert beat(network, "alice", tokens["alice"], [process()], load=5).status_code == 200
    assert beat(network, "bob", tokens["bob"], [process(), process("other")], load=1).status_code == 200
    assert beat(network, "charlie", tokens["charlie"], [process("mnist", "2")]).status_code == 200

    routed = network.get("/route?model=mnist&version=1").get_json()
    assert routed["node_id"] == "bob" and routed["address"] == "http://bob:5000"
    assert routed["version"] == "1"
    # PyGrid's parameter names work too; a version hosted nowhere is model_not_found.
    assert network.get("/route?model_name=mnist&model_version=2").get_json()["node_id"] == "charlie"
    missing = network.get("/route?model=mnist&version=9")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"
    assert network.get("/route?model=nothing").get_json()["error"]["code"] == "model_not_found"

    found = network.get("/search-model?model=mnist").get_json()
    assert sorted(n["node_id"] for n in found["nodes"]) == ["alice", "bob", "charlie"]
    assert all(n["process"]["status"] == "open" for n in found["nodes"])
    directory = {(m["name"], m["version"]): m for m in network.get("/models").get_json()["models"]}
    assert sorted(directory) == [("mnist", "1"), ("mnist", "2"), ("other", "1")]
    assert network.get("/connected-nodes").get_json() == {"grid-nodes": ["alice", "bob", "charlie"]}


def test_route_spreads_devices_between_heartbeats_and_prefers_open_processes(network):
    tokens = {n: join(network, n).get_json()["node_token"] for n in ("alice", "bob")}
    beat(network, "alice", tokens["alice"], [process(status="finished")])
    beat(network, "bob", tokens["bob"], [process()], load=3)
    # A finished process only gets devices when no Node runs the model's cycles any more.
    assert network.get("/route?model=mnist").get_json()["node_id"] == "bob"
    beat(network, "alice", tokens["alice"], [process()], load=0)
    # Devices routed since a Node's last heartbeat count as load: bob is at 3 + the 1 routed
    # above, so alice takes devices at 0, 1, 2, 3 and 4 (ties go to fewer devices), then bob.
    picks = [network.get("/route?model=mnist").get_json()["node_id"] for _ in range(6)]
    assert picks == ["alice"] * 5 + ["bob"]


def test_missed_heartbeats_mark_a_node_offline_until_the_next_one(network, clock):
    token = join(network, "alice").get_json()["node_token"]
    beat(network, "alice", token, [process()])
    clock.advance(0.5)
    assert network.get("/nodes/alice").get_json()["status"] == "online"
    clock.advance(0.3)  # offline_after is 0.6 s
    node = network.get("/nodes/alice").get_json()
    assert node["status"] == "offline" and node["seconds_since_heartbeat"] >= 0.6
    gone = network.get("/route?model=mnist")
    assert gone.status_code == 404
    assert gone.get_json()["error"]["details"]["unavailable_nodes"] == ["alice"]
    beat(network, "alice", token, [process()])
    assert network.get("/nodes/alice").get_json()["status"] == "online"
    # A degraded Node (its database is down) stays listed but gets no devices.
    beat(network, "alice", token, [process()], health="degraded")
    assert network.get("/nodes/alice").get_json()["status"] == "degraded"
    assert network.get("/route?model=mnist").status_code == 404
    # Leaving takes it out of routing at once.
    beat(network, "alice", token, [process()])
    left = network.post("/leave", json={"node_id": "alice"},
                        headers={"Authorization": f"Bearer {token}"})
    assert left.status_code == 200
    assert network.get("/nodes/alice").get_json()["status"] == "offline"


def test_a_node_cannot_register_heartbeat_or_leave_as_another(network):
    alice = join(network, "alice", "http://alice:5000").get_json()["node_token"]
    mallory = join(network, "mallory").get_json()["node_token"]
    # Without the registration secret nobody joins.
    assert join(network, "eve", secret="").status_code == 401
    wrong = join(network, "eve", secret="guess")
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "registration_secret_invalid"
    # With the secret but without alice's token, alice's id cannot be taken over.
    taken = join(network, "alice", "http://mallory:6666", token=mallory)
    assert taken.status_code == 409 and taken.get_json()["error"]["code"] == "node_id_taken"
    forged = beat(network, "alice", mallory, [process("poisoned")])
    assert forged.status_code == 403 and forged.get_json()["error"]["code"] == "node_token_invalid"
    assert network.post("/leave", json={"node_id": "alice"},
                        headers={"Authorization": f"Bearer {mallory}"}).status_code == 403
    assert network.post("/heartbeat", json={"node_id": "alice"}).status_code == 401
    node = network.get("/nodes/alice").get_json()
    assert node["address"] == "http://alice:5000" and node["processes"] == []
    # alice herself re-joins (a restart) with her token, and may move.
    again = join(network, "alice", "http://alice-2:5000", token=alice)
    assert again.status_code == 200 and again.get_json()["rejoined"] is True
    assert network.get("/nodes/alice").get_json()["address"] == "http://alice-2:5000"
    # Tokens never appear in any answer about the registry.
    assert alice not in network.get("/nodes").get_data(as_text=True)


def test_admin_removes_a_node(network):
    join(network, "alice")
    assert network.delete("/nodes/alice").status_code == 401
    assert network.delete("/nodes/alice", headers={"Authorization": "Bearer nope"}).status_code == 403
    removed = network.delete("/nodes/alice", headers={"Authorization": f"Bearer {ADMIN}"})
    assert removed.get_json() == {"status": "removed", "node_id": "alice"}
    assert network.get("/nodes/alice").get_json()["error"]["code"] == "node_unknown"
    # Its id is free again; a heartbeat with the old token is told to join.
    assert network.post("/heartbeat", json={"node_id": "alice"},
                        headers={"Authorization": "Bearer whatever"}).status_code == 404


def test_heartbeat_fields_are_validated(network):
    token = join(network, "alice").get_json()["node_token"]
    for bad in ({"processes": "x"}, {"processes": [{"name": "m"}]},
                {"processes": [{"name": "m", "version": "1", "status": "dancing"}]},
                {"load": -1}, {"devices": 1.5}, {"health": "great"}):
        answer = network.post("/heartbeat", json={"node_id": "alice", **bad},
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_request", bad
    assert join(network, "../etc").get_json()["error"]["code"] == "invalid_request"
    assert join(network, "ok", address="ftp://x").get_json()["error"]["code"] == "invalid_request"


def test_openapi_documents_exactly_the_routes_flask_serves(network):
    app = network.application
    served = {
        (rule.rule.replace("<path:filename>", "{filename}").replace("<node_id>", "{node_id}"),
         method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    document = network.get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    validate(document)  # raises with the offending part when the document is not OpenAPI 3.1


def test_dashboard_lists_nodes_and_models(network):
    token = join(network, "alice").get_json()["node_token"]
    beat(network, "alice", token, [process("digits", "3", cycle=7)], load=2)
    join(network, "bob")
    page = network.get("/")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert "alice" in html and "bob" in html and "digits" in html and "online" in html
    assert "http://" in html and "cdn" not in html.lower()
    assert network.get("/static/refresh.js").status_code == 200


def refused(answer, field):
    body = answer.get_json()
    assert answer.status_code == 400, body
    assert body["error"]["code"] == "invalid_request", body
    assert body["error"]["details"]["field"] == field, body
    return body["error"]["message"]


def test_inputs_that_crashed_the_network_are_refused_with_a_coded_400(network):
    # Each of these used to reach urlsplit, the database or datetime unchecked: a 500.
    for address in ("http://[::1", "http://a:99999", "http://a:0", "http://alice:5000\r\nX-Evil: 1",
                    "http://alice\n:5000", "http://al ice:5000", "http://" + "a" * 600):
        refused(join(network, "alice", address), "address")
    assert network.get("/nodes/alice").status_code == 404
    refused(network.post("/join", json={"node-id": "alice", "node-address": "http://[::1"},
                         headers={"Authorization": f"Bearer {SECRET}"}), "node-address")

    token = join(network, "alice").get_json()["node_token"]
    huge = 2**70
    for extra, field in (
        ({"devices": huge}, "devices"),
        ({"load": huge}, "load"),
        ({"processes": [{**process(), "cycle": huge}]}, "processes.0.cycle"),
        ({"processes": [{**process(), "accepted": huge}]}, "processes.0.accepted"),
        ({"processes": [process(), {**process("b"), "checkpoint": -1}]}, "processes.1.checkpoint"),
        ({"processes": [{**process(), "deadline": "0001-01-01T00:00:00+01:00"}]},
         "processes.0.deadline"),
        ({"processes": [{**process(), "deadline": "1900-01-01T00:00:00Z"}]}, "processes.0.deadline"),
        ({"processes": [{**process(), "deadline": "9999-12-31T23:00:00-05:00"}]},
         "processes.0.deadline"),
        ({"processes": [{**process(), "deadline": "next tuesday"}]}, "processes.0.deadline"),
        ({"processes": [{**process(), "deadline": 1767225600}]}, "processes.0.deadline"),
        ({"devices": True}, "devices"),
        ({"load": False}, "load"),
        ({"processes": [{**process(), "reported": True}]}, "processes.0.reported"),
        ({"processes": [process()] * 1001}, "processes"),
        ({"processes": [{**process(), "name": "a\r\nb"}]}, "processes.0.name"),
    ):
        body = {"node_id": "alice", **extra}
        refused(network.post("/heartbeat", json=body, headers={"Authorization": f"Bearer {token}"}),
                field)
    message = refused(beat(network, "alice", token, devics=1), "devics")
    assert "did you mean 'devices'" in message
    nested = refused(beat(network, "alice", token, [{**process(), "acepted": 1}]),
                     "processes.0.acepted")
    assert "did you mean 'processes.0.accepted'" in nested
    # Nothing of the refused heartbeats was stored.
    assert network.get("/nodes/alice").get_json()["processes"] == []

    refused(network.post("/leave", json={"node_id": "alice", "bye": 1},
                         headers={"Authorization": f"Bearer {token}"}), "bye")
    refused(network.get("/nodes/-starts-with-a-dash"), "node_id")
    refused(network.get("/route?model=mnist&colour=red"), "colour")
    refused(network.get("/route?model=a%0Db"), "model")


def test_what_a_node_sends_is_accepted_with_every_spelling(network):
    # The Node's own heartbeat (network_membership.collect_heartbeat): naive UTC deadline + "Z"
    # with microseconds, nulls for a process without cycles, a float load.
    token = join(network, "alice").get_json()["node_token"]
    sent = {"node_id": "alice", "devices": 2, "load": 2.0, "health": "ok", "processes": [
        {"name": "mnist", "version": "1", "status": "open", "cycle": 3, "checkpoint": 3,
         "accepted": 2, "reported": 0, "deadline": "2030-01-01T12:00:00.123456Z"},
        {"name": "new", "version": "1", "status": "waiting", "cycle": None, "checkpoint": 1,
         "accepted": 0, "reported": 0, "deadline": None},
    ]}
    answer = network.post("/heartbeat", json=sent, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_json()
    node = network.get("/nodes/alice").get_json()
    hosted = {p["name"]: p for p in node["processes"]}
    assert hosted["mnist"]["deadline"] == "2030-01-01T12:00:00Z" and hosted["mnist"]["cycle"] == 3
    assert hosted["new"]["deadline"] is None and hosted["new"]["cycle"] is None
    # An offset is converted to UTC; a degraded Node sends only its health.
    offset = {**sent["processes"][0], "deadline": "2030-01-01T14:00:00+02:00"}
    beat(network, "alice", token, [offset])
    assert network.get("/nodes/alice").get_json()["processes"][0]["deadline"] == "2030-01-01T12:00:00Z"
    degraded = network.post("/heartbeat", json={"node_id": "alice", "health": "degraded"},
                            headers={"Authorization": f"Bearer {token}"})
    assert degraded.status_code == 200
    beat(network, "alice", token, [process()])

    # PyGrid's spellings: node-id / node-address at join, model_name / model_version or name.
    pygrid = network.post("/join", json={"node-id": "bob", "node-address": "http://[::1]:5001/"},
                          headers={"Authorization": f"Bearer {SECRET}"})
    assert pygrid.status_code == 200, pygrid.get_json()
    assert network.get("/nodes/bob").get_json()["address"] == "http://[::1]:5001"
    found = network.post("/search-model", json={"model_name": "mnist", "model_version": 1})
    assert found.status_code == 200 and found.get_json()["version"] == "1"
    assert [n["node_id"] for n in found.get_json()["nodes"]] == ["alice"]
    # A query parameter wins over the body, and the first spelling over the others.
    both = network.post("/search-model?model=other", json={"model": "mnist", "name": "x"})
    assert both.get_json()["model"] == "other"
    assert network.get("/route?name=mnist&model_name=x").get_json()["node_id"] == "alice"


def test_a_name_on_two_nodes_is_two_models_and_routing_says_which_one(network):
    tokens = {n: join(network, n).get_json()["node_token"] for n in ("alice", "bob", "carol")}
    beat(network, "alice", tokens["alice"], [process("mnist", cycle=4)], load=2)
    beat(network, "bob", tokens["bob"], [process("mnist", cycle=9)], load=0)
    beat(network, "carol", tokens["carol"], [process("other")])

    # The directory: one entry per (Node, name, version), each saying where it lives.
    directory = network.get("/models").get_json()["models"]
    mnist = [m for m in directory if m["name"] == "mnist"]
    assert [(m["node_id"], m["address"], m["version"], m["cycle"]) for m in mnist] == [
        ("alice", "http://alice:5000", "1", 4), ("bob", "http://bob:5000", "1", 9)]
    assert all(m["node_status"] == "online" and m["status"] == "open" for m in mnist)

    # Without `node` the Network picks by its stated rule and lists the candidates.
    routed = network.get("/route?model=mnist").get_json()
    assert routed["node_id"] == "bob" and routed["picked_by"] == "training_then_least_loaded"
    assert [(c["node_id"], c["address"]) for c in routed["candidates"]] == [
        ("bob", "http://bob:5000"), ("alice", "http://alice:5000")]
    # `node` pins the model on that Node, whatever the load.
    pinned = network.get("/route?model=mnist&node=alice").get_json()
    assert (pinned["node_id"], pinned["picked_by"], pinned["cycle"]) == ("alice", "node_requested", 4)
    assert [c["node_id"] for c in pinned["candidates"]] == ["alice"]
    elsewhere = network.get("/route?model=mnist&node=carol")
    assert elsewhere.status_code == 404
    assert elsewhere.get_json()["error"]["code"] == "model_not_found"
    assert "'carol'" in elsewhere.get_json()["error"]["message"]
    refused(network.get("/route?model=mnist&node=../x"), "node")
    # One Node only: nothing to choose.
    only = network.get("/route?model=other").get_json()
    assert (only["node_id"], only["picked_by"]) == ("carol", "only_node")
    # search-model takes `node` too.
    found = network.get("/search-model?model=mnist&node=bob").get_json()
    assert [n["node_id"] for n in found["nodes"]] == ["bob"]

    # The dashboard shows the two mnist models apart, each with its Node and address.
    html = network.get("/").get_data(as_text=True)
    assert 'data-model="mnist" data-version="1" data-node="alice"' in html
    assert 'data-model="mnist" data-version="1" data-node="bob"' in html
    assert html.count("also on other Nodes") == 2  # on both mnist rows, not on "other"


def test_dashboard_counts_routes_and_heartbeats_per_minute(network):
    token = join(network, "alice").get_json()["node_token"]
    for _ in range(3):
        beat(network, "alice", token, [process("digits", "3")])
    for _ in range(4):
        assert network.get("/route?model=digits").status_code == 200
    assert network.get("/route?model=nothing").status_code == 404
    state = network.application.extensions["fedgrid_network"]
    window = state.activity.window()
    assert window.heartbeats_of("alice")[-1] == 3 and window.refused[-1] == 1
    assert window.routes_to_model("alice", "digits", "3")[-1] == 4
    assert window.nodes_online()[-1] == 1
    html = network.get("/").get_data(as_text=True)
    for chart in ("nodes-online", "heartbeats", "routes"):
        assert f'id="chart-{chart}"' in html
    assert 'data-series="digits v3 @ alice"' in html and 'data-series="refused"' in html
    assert ">minutes ago<" in html and ">per minute<" in html


def leave(client, node_id, token, replica=None):
    body = {"node_id": node_id} if replica is None else {"node_id": node_id, "replica": replica}
    return client.post("/leave", json=body, headers={"Authorization": f"Bearer {token}"})


def test_replicas_of_one_node_are_one_entry_online_while_any_of_them_beats(network, clock):
    # Two replicas of alice (--cluster): the first join's token is shared through their database,
    # so the second joins with it. bob runs as one process, as before replicas existed.
    token = join(network, "alice", replica="a").get_json()["node_token"]
    again = join(network, "alice", token=token, replica="b")
    assert again.status_code == 200 and again.get_json()["node_token"] == token
    bob = join(network, "bob").get_json()["node_token"]
    # Replicas count devices in the database they share: each reports the whole Node's 2.
    for replica in ("a", "b"):
        assert beat(network, "alice", token, [process()], load=2, replica=replica).status_code == 200
    beat(network, "bob", bob, [process()], load=3)

    nodes = {n["node_id"]: n for n in network.get("/nodes").get_json()["nodes"]}
    assert set(nodes) == {"alice", "bob"}
    assert nodes["alice"]["replicas"] == {"online": 2, "total": 2}
    assert (nodes["alice"]["devices"], nodes["alice"]["load"]) == (2, 2.0)
    assert nodes["bob"]["replicas"] == {"online": 1, "total": 1}
    assert [(m["name"], m["node_id"]) for m in network.get("/models").get_json()["models"]] == [
        ("mnist", "alice"), ("mnist", "bob")]
    assert [n["node_id"] for n in network.get("/search-model?model=mnist").get_json()["nodes"]] \
        == ["alice", "bob"]
    # Routing weighs alice at 2, not 2 per replica: she is less loaded than bob's 3.
    routed = network.get("/route?model=mnist").get_json()
    assert routed["node_id"] == "alice" and [c["node_id"] for c in routed["candidates"]] == [
        "alice", "bob"]
    html = network.get("/").get_data(as_text=True)
    assert "data-replicas>2/2<" in html and "data-replicas>1/1<" in html

    # Replica a stops beating (kill -9): alice stays online on b alone.
    clock.advance(0.4)
    beat(network, "alice", token, [process()], load=1, replica="b")
    beat(network, "bob", bob, [process()], load=3)
    clock.advance(0.4)  # a has been silent 0.8 s, over offline_after (0.6 s)
    alice = network.get("/nodes/alice").get_json()
    assert alice["status"] == "online" and alice["load"] == 1.0
    assert alice["replicas"]["online"] == 1 and alice["replicas"]["total"] == 2
    assert {m["replica"]: m["status"] for m in alice["replicas"]["members"]} == {
        "a": "offline", "b": "online"}
    assert network.get("/route?model=mnist&node=alice").status_code == 200

    # a comes back; then b says goodbye: only b leaves.
    beat(network, "alice", token, [process()], load=1, replica="a")
    left = leave(network, "alice", token, replica="b")
    assert left.get_json() == {"status": "left", "node_id": "alice", "replica": "b"}
    alice = network.get("/nodes/alice").get_json()
    assert alice["status"] == "online" and alice["left"] is False
    assert alice["replicas"]["online"] == 1 and alice["replicas"]["total"] == 1
    assert [m["replica"] for m in alice["replicas"]["members"]] == ["a"]
    # The last replica's goodbye takes the Node offline at once, as a single process's does.
    leave(network, "alice", token, replica="a")
    alice = network.get("/nodes/alice").get_json()
    assert alice["status"] == "offline" and alice["left"] is True
    assert alice["replicas"] == {"online": 0, "total": 0, "members": []}
    assert network.get("/route?model=mnist").get_json()["node_id"] == "bob"
    # A replica's next heartbeat brings the Node back; the one that left is forgotten.
    beat(network, "alice", token, [process()], replica="a")
    beat(network, "alice", token, [process()], replica="c")
    assert network.get("/nodes/alice").get_json()["replicas"]["online"] == 2

    # A Node without replica ids: one replica, and a goodbye that takes the whole Node out.
    leave(network, "bob", bob)
    assert network.get("/nodes/bob").get_json()["status"] == "offline"
    assert network.get("/nodes/bob").get_json()["left"] is True
    # A goodbye without a replica id from a replicated Node is the whole Node's too.
    leave(network, "alice", token)
    assert network.get("/nodes/alice").get_json()["status"] == "offline"


def test_a_replica_needs_the_node_token_and_silent_ones_are_forgotten(network, clock):
    token = join(network, "alice", replica="a").get_json()["node_token"]
    # A replica that does not have the shared token is another deployment claiming the id.
    taken = join(network, "alice", replica="b")
    assert taken.status_code == 409 and taken.get_json()["error"]["code"] == "node_id_taken"
    assert leave(network, "alice", "guess", replica="a").status_code == 403
    refused(beat(network, "alice", token, replica="-a"), "replica")
    refused(leave(network, "alice", token, replica="a" * 129), "replica")
    # A replica that is degraded (its database does not answer) keeps the Node degraded only
    # while no healthy replica beats.
    beat(network, "alice", token, [process()], replica="a", health="degraded")
    assert network.get("/nodes/alice").get_json()["status"] == "degraded"
    beat(network, "alice", token, [process()], replica="b")
    assert network.get("/nodes/alice").get_json()["status"] == "online"
    # A replica silent for an hour (crashed; its successor has another id) is forgotten at the
    # Node's next heartbeat.
    clock.advance(3601)
    replicas = network.get("/nodes/alice").get_json()["replicas"]
    assert (replicas["online"], replicas["total"]) == (0, 2)
    beat(network, "alice", token, [process()], replica="c")
    replicas = network.get("/nodes/alice").get_json()["replicas"]
    assert (replicas["online"], replicas["total"]) == (1, 1)
    assert [m["replica"] for m in replicas["members"]] == ["c"]
