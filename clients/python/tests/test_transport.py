"""Transport behaviour a real Node rarely shows on demand: transient answers, restarts."""

from __future__ import annotations

import pytest

import fedgrid
from fedgrid import Admin, Client
from fedgrid.transport import HttpTransport, http_base, ws_endpoint


@pytest.fixture
def flaky_server(stub_http_server):
    """Answers 503 `cycle_unavailable` with `Retry-After: 0` `failures` times, then succeeds."""
    state = {"failures": 2, "hits": 0}

    def get(request):
        state["hits"] += 1
        if state["hits"] <= state["failures"]:
            body = {"error": {"code": "cycle_unavailable", "status": 503,
                              "message": "the next cycle is being opened; retry"}}
            return 503, body, {"Retry-After": "0"}
        return 200, {"processes": []}

    server = stub_http_server(get=get)
    server.state = state
    return server


def test_transient_answers_are_retried_honouring_retry_after(flaky_server):
    transport = HttpTransport(flaky_server.url, retries=3, backoff=0.01)
    assert transport.call("processes", admin_token="t") == {"processes": []}
    assert flaky_server.state["hits"] == 3


def test_retries_give_up_with_the_nodes_error(flaky_server):
    flaky_server.state["failures"] = 100
    transport = HttpTransport(flaky_server.url, retries=2, backoff=0.01)
    with pytest.raises(fedgrid.FedgridError) as caught:
        transport.call("processes", admin_token="t")
    assert caught.value.code == "cycle_unavailable" and caught.value.status == 503
    assert flaky_server.state["hits"] == 3


def test_websocket_reconnects_after_a_node_restart(node_factory, compiled_mlp, digits):
    node = node_factory("sqlite")
    with Admin(node.url, node.admin_token) as admin:
        admin.host_training(compiled_mlp, "restart-model", server_config={"max_diffs": 2})
    features, labels = digits
    with Client(node.ws_url, backoff=0.1) as client:
        job = client.new_job("restart-model")
        assignment = job.request()
        result = assignment.train((features[:20], labels[:20]))
        node.stop()
        restarted = node.restart()
        try:
            # Same socket object in the client: it was dropped and is reopened transparently; the
            # assignment lives in the Node's database, so it is still valid after the restart.
            assert assignment.report(result)["status"] == "success"
        finally:
            restarted.stop()


@pytest.mark.parametrize("url, http, ws", [
    ("http://h:5000", "http://h:5000", "ws://h:5000/ws"),
    ("http://h:5000/", "http://h:5000", "ws://h:5000/ws"),
    ("ws://h:5000/ws", "http://h:5000", "ws://h:5000/ws"),
    ("wss://h/grid/ws", "https://h/grid", "wss://h/grid/ws"),
    ("https://h/grid", "https://h/grid", "wss://h/grid/ws"),
])
def test_url_forms(url, http, ws):
    assert http_base(url) == http and ws_endpoint(url) == ws


def test_unsupported_scheme_says_which_to_use():
    with pytest.raises(ValueError, match="http"):
        Client("ftp://node")
