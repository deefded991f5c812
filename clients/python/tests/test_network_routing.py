"""``Client(url)`` with a Fedgrid Network's URL: the Node is found through ``GET /route``.

The Network app is built elsewhere; a stand-in HTTP server here speaks its two routes
(``/status`` with ``kind: network``, ``/route?model&version``) and routes to a real Node.
"""

from __future__ import annotations

import pytest

import fedgrid
from fedgrid import Client


@pytest.fixture
def stand_in_network(sdk_node, stub_http_server):
    routes: dict[str, str] = {}
    asked: list[dict] = []

    def get(request):
        query = {k: v[0] for k, v in request.query.items()}
        if request.path == "/status":
            return 200, {"kind": "network", "network_id": "stand-in"}
        if request.path == "/route" and query.get("model") in routes:
            asked.append(query)
            return 200, {"node_id": "node-1", "address": routes[query["model"]]}
        if request.path == "/route":
            return 404, {"error": {"code": "model_not_found", "status": 404,
                                   "message": "no Node hosts that model"}}
        return 404, {"error": {"code": "not_found", "status": 404, "message": "?"}}

    server = stub_http_server(get=get)
    server.routes, server.asked = routes, asked
    return server


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_client_resolves_the_node_through_the_network(stand_in_network, sdk_node, host, digits,
                                                      transport):
    name = host(server_config={"max_diffs": 1})
    stand_in_network.routes[name] = sdk_node.url
    url = stand_in_network.url if transport == "http" else \
        stand_in_network.url.replace("http://", "ws://")
    features, labels = digits
    with Client(url) as client:
        job = client.new_job(name, "1.0")
        assignment = job.request()
        assignment.report(assignment.train((features[:20], labels[:20])))
        assert job.transport.kind == transport
        assert job.transport.url == sdk_node.url
    assert stand_in_network.asked == [{"model": name, "version": "1.0"}]


def test_model_unknown_to_the_network(stand_in_network):
    with Client(stand_in_network.url) as client, pytest.raises(fedgrid.ProcessUnknown) as caught:
        client.new_job("nobody-hosts-this").request()
    assert "nobody-hosts-this" in str(caught.value)


def test_client_through_a_real_network(node_factory, tmp_path, compiled_mlp, digits):
    from fedgrid import Admin
    from fedgrid_network.testing import start_network, wait_for

    network = start_network(data_dir=tmp_path / "network")
    node = None
    try:
        node = node_factory("sqlite", extra_args=["--network", network.url, "--id", "sdk-alice",
                                                  "--network-secret", network.secret])
        with Admin(node.url, node.admin_token) as admin:
            admin.host_training(compiled_mlp, "routed-model", "1.0",
                                server_config={"max_diffs": 1})
        wait_for(lambda: network.nodes().get("sdk-alice", {}).get("processes"),
                 what="the Node's heartbeat listing its model")
        features, labels = digits
        with Client(network.url) as client:
            job = client.new_job("routed-model")
            assignment = job.request()
            assignment.report(assignment.train((features[:20], labels[:20])))
            assert job.transport.url == node.url
            with pytest.raises(fedgrid.ProcessUnknown):
                client.new_job("hosted-nowhere").request()
    finally:
        if node is not None:
            node.stop()  # first, so that it can say goodbye to the Network
        network.stop()
