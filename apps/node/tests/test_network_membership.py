"""A real Node joins a real Network, heartbeats, goes offline and comes back, and cannot be
impersonated: processes on loopback, short heartbeat intervals."""

from __future__ import annotations

import io
import json

import requests

from fedgrid_network.testing import free_port, start_network, wait_for
from tests.support.models import logistic_regression


def host(node, name, max_diffs=2):
    plan, checkpoint = logistic_regression()
    answer = requests.post(
        f"{node.url}/model-centric/host-training",
        data={"name": name, "version": "1", "client_config": json.dumps({"batch_size": 8}),
              "server_config": json.dumps({"max_diffs": max_diffs, "cycle_length": 300})},
        files={"model": ("model.safetensors", checkpoint),
               "plans[training_plan]": ("plan.fgplan", plan)},
        headers={"Authorization": f"Bearer {node.admin_token}"}, timeout=60,
    )
    assert answer.status_code == 200, answer.text


def membership_args(network, node_id, secret=None):
    return ["--network", network.url, "--id", node_id,
            "--network-secret", secret or network.secret]


def test_node_joins_a_network_that_starts_later_and_reports_what_it_hosts(node_factory, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = node_factory("sqlite", extra_args=["--network", url, "--id", "alice",
                                              "--network-secret", "s3cret"])
    network = start_network(data_dir=tmp_path / "network", port=port, secret="s3cret")
    try:
        alice = wait_for(lambda: network.nodes().get("alice"), what="alice to join")
        assert alice["address"] == node.url and alice["status"] == "online"
        host(node, "membership-model")
        hosted = wait_for(lambda: network.nodes()["alice"]["processes"], what="a heartbeat")
        assert hosted[0]["name"] == "membership-model" and hosted[0]["status"] == "open"
        assert hosted[0]["cycle"] == 1 and hosted[0]["checkpoint"] == 1

        # A device asks the Network, gets alice, and gets a place in her cycle.
        routed = requests.get(f"{network.url}/route", params={"model": "membership-model"},
                              timeout=10).json()
        assert routed["node_id"] == "alice" and routed["address"] == node.url
        worker = requests.post(f"{routed['address']}/model-centric/authenticate",
                               json={"model_name": "membership-model"}, timeout=10).json()
        cycle = requests.post(f"{routed['address']}/model-centric/cycle-request",
                              json={"worker_id": worker["worker_id"], "model": "membership-model",
                                    "version": "1", "ping": 1, "download": 50, "upload": 50},
                              timeout=10).json()
        assert cycle["status"] == "accepted"
        # The next heartbeat counts that device as training (load).
        wait_for(lambda: network.nodes()["alice"]["devices"] == 1, what="load 1")
        assert network.nodes()["alice"]["processes"][0]["accepted"] == 1

        # kill -9: heartbeats stop, the Network marks alice offline and routes nowhere.
        node.kill()
        wait_for(lambda: network.nodes()["alice"]["status"] == "offline", what="offline")
        assert requests.get(f"{network.url}/route", params={"model": "membership-model"},
                            timeout=10).status_code == 404
        # Restarted with the same data directory, she re-joins under her id with her token.
        restarted = node.restart()
        try:
            wait_for(lambda: network.nodes()["alice"]["status"] == "online", what="online again")
            # A clean shutdown says goodbye: offline at once, not after missed heartbeats.
            restarted.stop()
            assert network.nodes()["alice"]["status"] == "offline"
            assert network.nodes()["alice"]["left"] is True
        finally:
            restarted.stop()
    finally:
        network.stop()


def test_a_second_node_cannot_take_over_an_id_and_a_wrong_secret_is_refused(node_factory,
                                                                              tmp_path):
    network = start_network(data_dir=tmp_path / "network")
    try:
        real = node_factory("sqlite", extra_args=membership_args(network, "bob"))
        wait_for(lambda: network.nodes().get("bob"), what="bob to join")
        impostor = node_factory("sqlite", extra_args=membership_args(network, "bob"))
        outsider = node_factory("sqlite", extra_args=membership_args(network, "eve", "guess"))
        wait_for(lambda: "node_id_taken" in impostor.log(), what="the impostor to be refused")
        wait_for(lambda: "registration_secret_invalid" in outsider.log(),
                 what="the outsider to be refused")
        nodes = network.nodes()
        assert set(nodes) == {"bob"} and nodes["bob"]["address"] == real.url
        # Neither the token nor the secret shows up in any log.
        token = json.loads((real.data_dir / "network-membership.json").read_text())["node_token"]
        assert (real.data_dir / "network-membership.json").stat().st_mode & 0o077 == 0
        for log in (real.log(), impostor.log(), outsider.log(), network.log()):
            assert token not in log and network.secret not in log
    finally:
        network.stop()


def test_heartbeat_describes_open_and_finished_processes(tmp_path):
    """What a heartbeat says, computed in-process from the Node's database."""
    from fedgrid_node.app import create_app
    from fedgrid_node.config import NodeConfig
    from fedgrid_node.network_membership import collect_heartbeat, default_address
    from fedgrid_plans import tensors
    from tests.support.models import random_diff

    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin"))
    state = app.extensions["fedgrid"]
    client = app.test_client()
    try:
        assert app.extensions["fedgrid_membership"] is None  # no --network: standalone
        assert collect_heartbeat(state.db) == {"processes": [], "devices": 0, "load": 0.0,
                                               "health": "ok"}
        plan, checkpoint = logistic_regression()
        for name, cycles in (("once", 1), ("ongoing", None)):
            server_config = {"max_diffs": 1, "cycle_length": 300}
            if cycles:
                server_config["num_cycles"] = cycles
            hosted = client.post(
                "/model-centric/host-training",
                data={"name": name, "version": "2", "client_config": "{}",
                      "server_config": json.dumps(server_config),
                      "model": (io.BytesIO(checkpoint), "model.safetensors"),
                      "plans[training_plan]": (io.BytesIO(plan), "plan.fgplan")},
                headers={"Authorization": "Bearer admin"},
            )
            assert hosted.status_code == 200, hosted.get_json()
        workers = {}
        for name in ("once", "ongoing"):
            worker = client.post("/model-centric/authenticate",
                                 json={"model_name": name}).get_json()["worker_id"]
            cycle = client.post("/model-centric/cycle-request",
                                json={"worker_id": worker, "model": name, "version": "2",
                                      "ping": 1, "download": 10, "upload": 10}).get_json()
            workers[name] = (worker, cycle["request_key"])
        beat = collect_heartbeat(state.db)
        assert beat["devices"] == 2 and beat["load"] == 2.0
        worker, key = workers["once"]
        reported = client.post(
            f"/model-centric/report?worker_id={worker}&request_key={key}&num_samples=5",
            data=tensors.encode(random_diff(checkpoint, 1)),
            content_type="application/octet-stream")
        assert reported.status_code == 200, reported.get_json()
        beat = collect_heartbeat(state.db)
        processes = {p["name"]: p for p in beat["processes"]}
        assert processes["once"] == {"name": "once", "version": "2", "status": "finished",
                                     "cycle": 1, "checkpoint": 2, "accepted": 0, "reported": 0,
                                     "deadline": None}
        ongoing = processes["ongoing"]
        assert (ongoing["status"], ongoing["cycle"], ongoing["checkpoint"], ongoing["accepted"],
                ongoing["reported"]) == ("open", 1, 1, 1, 0)
        assert ongoing["deadline"].endswith("Z") and beat["devices"] == 1
        # The Network validates heartbeats with the protocol's model: what the Node sends passes.
        from fedgrid_protocol.network import HeartbeatRequest
        from fedgrid_protocol.validation import validate

        validated = validate(HeartbeatRequest, {**beat, "node_id": "fedgrid-node"})
        assert {p.name: p.status for p in validated.processes} == {"once": "finished",
                                                                   "ongoing": "open"}
        assert validated.processes[1].deadline is not None
    finally:
        state.engine.stop()
        state.db.dispose()
    assert default_address("0.0.0.0", 5000).endswith(":5000")
    assert default_address("127.0.0.1", 5001) == "http://127.0.0.1:5001"
