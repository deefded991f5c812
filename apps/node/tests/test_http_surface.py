"""The Node's HTTP surface besides the events: OpenAPI, health, identity, limits, speed test."""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests
import websocket
from openapi_spec_validator import validate

from fedgrid_node.app import create_app
from fedgrid_node.config import NodeConfig
from fedgrid_plans import tensors


def openapi_path(flask_rule: str) -> str:
    """Flask's `/js/<path:filename>` is OpenAPI's `/js/{filename}`."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", flask_rule)


def test_openapi_documents_exactly_the_routes_flask_serves_and_is_valid(tmp_path):
    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="t"))
    try:
        served = {
            (openapi_path(rule.rule), method.lower())
            for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"}
        }
        document = app.test_client().get("/openapi.json").get_json()
        documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
        assert served == documented
        validate(document)  # raises with the offending part when the document is not OpenAPI 3.1
        # The events' payloads are the protocol's models, not hand-written copies.
        cycle_request = document["components"]["schemas"]["CycleRequest"]
        assert cycle_request["additionalProperties"] is False
        assert cycle_request["properties"]["wait"]["anyOf"][0]["maximum"] == 30
    finally:
        app.extensions["fedgrid"].engine.stop()


def test_plain_http_on_the_websocket_endpoint_says_so(shared_node):
    answer = requests.get(f"{shared_node.url}/ws", timeout=10)
    assert answer.status_code == 426 and answer.json()["error"]["code"] == "websocket_required"


def test_health_and_status(shared_node):
    health = requests.get(f"{shared_node.url}/health", timeout=10)
    assert health.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    status = requests.get(f"{shared_node.url}/status", timeout=10).json()
    assert status["node_id"] and status["version"] and status["uptime_seconds"] > 0


def test_speed_test_download_and_upload(shared_node):
    url = f"{shared_node.url}/model-centric/speed-test"
    download = requests.get(url, params={"size": 1_000_003}, timeout=30)
    assert download.status_code == 200 and len(download.content) == 1_000_003
    # Random bytes: a compressing proxy could otherwise fake a fast link.
    counts = np.bincount(np.frombuffer(download.content[:65536], np.uint8), minlength=256)
    assert counts.max() < 600
    upload = requests.post(url, data=b"x" * 2_500_000, timeout=30)
    assert upload.json() == {"status": "success", "received": 2_500_000}
    too_big = requests.get(url, params={"size": 10**12}, timeout=10)
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "invalid_request"


def test_bodies_over_the_limit_are_refused_with_json(node_factory):
    node = node_factory(extra_args=["--max-body-mb", "1"])
    big = b"\x00" * (2 * 1024 * 1024)
    answer = requests.post(f"{node.url}/model-centric/report",
                           params={"worker_id": "w", "request_key": "k", "num_samples": 1},
                           data=big, headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"
    answer = requests.post(f"{node.url}/model-centric/speed-test", data=big, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"
    # Over WebSocket the same limit ends the connection: a close frame with 1009 (message too
    # big) when the client reads it in time, or a reset while the client is still sending.
    ws = websocket.create_connection(node.url.replace("http", "ws") + "/ws", timeout=30)
    try:
        ws.send_binary(tensors.encode({"diff": np.zeros(2 * 1024 * 1024, np.uint8)}))
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame[:2], "big") == 1009
    except (ConnectionResetError, BrokenPipeError, websocket.WebSocketConnectionClosedException):
        pass
    assert "WebSocket event" not in node.log()  # refused before any handler ran
    # The Node is still fine afterwards.
    assert requests.get(f"{node.url}/health", timeout=10).status_code == 200


def test_generated_admin_token_is_kept_across_restarts(node_factory, tmp_path):
    from tests.support.node_process import start_node

    data_dir = tmp_path / "generated"
    node = start_node(data_dir=data_dir, admin_token="")  # no token given: the Node makes one
    try:
        token = (data_dir / "admin-token").read_text().strip()
        assert token and oct((data_dir / "admin-token").stat().st_mode & 0o777) == "0o600"
        assert "Generated admin token" in node.log()
        listing = requests.get(f"{node.url}/model-centric/processes",
                               headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listing.status_code == 200
    finally:
        node.stop()
    again = node.restart()  # same data directory, still no token given
    try:
        listing = requests.get(f"{again.url}/model-centric/processes",
                               headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listing.status_code == 200
    finally:
        again.stop()


def test_cors_opens_the_device_api_to_other_origins_but_not_the_dashboard(shared_node, node_factory):
    origin = {"Origin": "https://shop.example"}
    preflight = requests.options(
        f"{shared_node.url}/model-centric/report",
        headers={**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}, timeout=10)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    status = requests.get(f"{shared_node.url}/status", headers=origin, timeout=10)
    assert status.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in status.headers["Access-Control-Expose-Headers"]
    dashboard = requests.get(f"{shared_node.url}/", headers=origin, timeout=10)
    assert "Access-Control-Allow-Origin" not in dashboard.headers

    listed = node_factory(extra_args=["--cors-origins", "https://shop.example"])
    allowed = requests.get(f"{listed.url}/health", headers=origin, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Origin" in allowed.headers["Vary"]
    other = requests.get(f"{listed.url}/health", headers={"Origin": "https://evil.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers


def test_an_admin_token_starting_with_a_dash_is_a_token_not_a_flag(node_factory):
    # secrets.token_urlsafe() starts with "-" one time in 64; the demo once failed on exactly that.
    node = node_factory(admin_token="-dash-first-token")
    listing = requests.get(f"{node.url}/model-centric/processes",
                           headers={"Authorization": "Bearer -dash-first-token"}, timeout=10)
    assert listing.status_code == 200


@pytest.mark.parametrize("size", ["²", "9" * 5000, "-1", "1e3", " 12"])
def test_speed_test_sizes_that_are_not_ascii_digits_are_invalid_request(shared_node, size):
    # Found by the schemathesis run (tests/test_fuzz_openapi.py): "²" passed str.isdigit() and
    # int() refused it, and int() refuses 5000 digits; both were 500s with a traceback.
    answer = requests.get(f"{shared_node.url}/model-centric/speed-test", params={"size": size},
                          timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
