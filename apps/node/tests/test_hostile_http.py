"""Hostile HTTP against a real Node: odd Authorization values, 405 without Allow, oversized
chunked bodies, a vanishing client, and an admin-token file that holds no token (issue 16)."""

from __future__ import annotations

import json
import socket
import time

import jwt
import pytest
import requests
import websocket

from tests.support import raw_http
from tests.support.api_client import HttpApi
from tests.support.models import logistic_regression, unique_name
from tests.support.node_process import start_node

ODD_AUTHORIZATIONS = [
    # (raw header value, the status and code the Node answers)
    (b"Bearer \xc3\xa9\xc3\xa9", 403, "admin_token_invalid"),  # UTF-8 bytes
    (b"Bearer \xff\xfe", 403, "admin_token_invalid"),  # not even UTF-8
    (b"\xff", 401, "admin_token_required"),
    (b"Basic dXNlcjpwYXNz", 401, "admin_token_required"),
    (b"Bearer", 401, "admin_token_required"),
    (b"Bearer    ", 401, "admin_token_required"),
    (b"bearer test-admin-token-not", 403, "admin_token_invalid"),
    (b"Bearer " + b"a" * 20000, 401, "admin_token_required"),  # longer than any token
]


@pytest.mark.parametrize(("value", "status", "code"), ODD_AUTHORIZATIONS)
@pytest.mark.parametrize("path", ["/model-centric/processes", "/metrics"])
def test_odd_authorization_headers_get_the_coded_401_or_403(shared_node, path, value, status,
                                                            code):
    answer = raw_http.request(shared_node.port, "GET", path, headers={"Authorization": value})
    assert (answer.status, answer.error_code) == (status, code), answer.body[:300]
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"


def test_the_admin_token_still_opens_admin_routes(shared_node):
    answer = raw_http.request(shared_node.port, "GET", "/model-centric/processes",
                              headers={"Authorization": f"Bearer {shared_node.admin_token}"})
    assert answer.status == 200


@pytest.mark.parametrize("value", [5, ["Bearer x"], {"token": 1}, True, "Bearer \u00e9\ud800"])
def test_websocket_envelope_authorization_of_any_type_is_refused_with_a_code(shared_node, value):
    ws = websocket.create_connection(shared_node.ws_url, timeout=10)
    try:
        ws.send(json.dumps({"type": "model-centric/processes", "request_id": 1, "data": {},
                            "authorization": value}))
        answer = json.loads(ws.recv())
    finally:
        ws.close()
    assert answer["request_id"] == 1
    assert answer["data"]["error"]["code"] in ("admin_token_required", "admin_token_invalid")


def test_device_tokens_that_are_not_jwt_text_are_refused_with_a_code(shared_node):
    api = HttpApi(shared_node.url, shared_node.admin_token)
    secret = "a-test-secret-that-is-long-enough-for-hs512-keys-0123456789abcdef"
    name = unique_name("jwt-odd")
    plan, checkpoint = logistic_regression()
    hosted = api.call("host-training", {
        "name": name, "version": "1.0", "client_config": {"batch_size": 16, "lr": 0.1},
        "server_config": {"max_diffs": 2, "authentication": {"type": "jwt", "secret": secret,
                                                             "algorithms": ["HS256"]}},
    }, blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert hosted.status == 200, hosted.body
    header_with_list_alg = jwt.utils.base64url_encode(b'{"alg": ["HS256"]}').decode()
    for token in ("\u00e9\u00e9", "\ud800", "x" * 100_000, f"{header_with_list_alg}.e30.x"):
        body = json.dumps({"model_name": name, "model_version": "1.0", "auth_token": token})
        answer = raw_http.request(shared_node.port, "POST", "/model-centric/authenticate",
                                  headers={"Content-Type": "application/json"},
                                  body=body.encode())
        assert 400 <= answer.status < 500, answer.body[:300]
        assert answer.error_code in ("auth_token_invalid", "invalid_request"), answer.body[:300]
    api.close()


def test_405_answers_say_which_methods_are_allowed(shared_node):
    answer = raw_http.request(shared_node.port, "PUT", "/model-centric/processes")
    assert (answer.status, answer.error_code) == (405, "method_not_allowed")
    assert "GET" in {m.strip() for m in answer.headers["allow"].split(",")}
    answer = raw_http.request(shared_node.port, "DELETE", "/model-centric/report")
    assert answer.status == 405 and "POST" in answer.headers["allow"]


@pytest.fixture(scope="module")
def small_node(tmp_path_factory):
    """A Node taking bodies of at most 10 KiB (SQLite: the limit is the HTTP layer's)."""
    node = start_node(data_dir=tmp_path_factory.mktemp("small-node"),
                      extra_args=["--max-body-mb", str(10 / 1024)])
    yield node
    node.stop()
    assert "Traceback" not in node.log(), node.log()


@pytest.mark.parametrize(("path", "content_type"), [
    ("/model-centric/authenticate", "application/json"),
    ("/model-centric/report?worker_id=w&request_key=k&num_samples=1", "application/octet-stream"),
    ("/model-centric/speed-test", "application/octet-stream"),
])
def test_a_chunked_body_over_the_limit_is_refused_not_truncated(small_node, path, content_type):
    body = b'{"model_name": "' + b"x" * 40_000 + b'"}'
    answer = raw_http.request(small_node.port, "POST", path, chunked=True, body=body,
                              headers={"Content-Type": content_type})
    assert (answer.status, answer.error_code) == (413, "body_too_large"), answer.body[:300]
    assert "10240 bytes" in answer.json()["error"]["message"]


def test_a_chunked_body_within_the_limit_is_read_whole(small_node):
    body = json.dumps({"model_name": "no-such-model", "model_version": "1.0"}).encode()
    answer = raw_http.request(small_node.port, "POST", "/model-centric/authenticate",
                              chunked=True, body=body, headers={"Content-Type": "application/json"})
    assert (answer.status, answer.error_code) == (404, "process_unknown"), answer.body[:300]
    exactly = b"x" * 10240  # exactly the limit: accepted
    answer = raw_http.request(small_node.port, "POST", "/model-centric/speed-test", chunked=True,
                              body=exactly, headers={"Content-Type": "application/octet-stream"})
    assert answer.status == 200 and answer.json()["received"] == 10240


def test_a_body_of_exactly_the_limit_with_a_content_length_is_accepted(small_node):
    # As a chunked one is (above). Werkzeug's own bounded stream refuses the read that finds the
    # body's end once it has handed out `limit` bytes, so a body of exactly the limit was 413.
    for size in (10239, 10240):
        answer = requests.post(f"{small_node.url}/model-centric/speed-test", data=b"x" * size,
                               timeout=10)
        assert answer.status_code == 200 and answer.json()["received"] == size, answer.text
    answer = requests.post(f"{small_node.url}/model-centric/speed-test", data=b"x" * 10241,
                           timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "body_too_large")


def test_a_client_vanishing_mid_answer_or_mid_upload_logs_no_traceback(shared_node):
    before = len(shared_node.log())
    for nread in (0, 1, 200_000):
        sock = socket.create_connection(("127.0.0.1", shared_node.port), timeout=10)
        sock.sendall(b"GET /model-centric/speed-test?size=33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < nread:
            got += len(sock.recv(65536))
        raw_http.vanish(sock)
    for rude in (raw_http.vanish, socket.socket.close):
        sock = socket.create_connection(("127.0.0.1", shared_node.port), timeout=10)
        sock.sendall(b"POST /model-centric/speed-test HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000000\r\n\r\n" + b"x" * 100_000)
        rude(sock)
        sock = socket.create_connection(("127.0.0.1", shared_node.port), timeout=10)
        sock.sendall(b"POST /model-centric/authenticate HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"100\r\n{\"model_name\"")
        rude(sock)
    time.sleep(0.5)
    assert requests.get(f"{shared_node.url}/health", timeout=10).status_code == 200
    assert "Traceback" not in shared_node.log()[before:]


# ------------------------------------------------------------------------ the admin-token file


@pytest.mark.parametrize("content", [b"  \n\t\n"])
def test_an_empty_admin_token_file_is_replaced_never_valid(tmp_path, content):
    data = tmp_path / "node"
    data.mkdir()
    (data / "admin-token").write_bytes(content)
    node = start_node(data_dir=data, admin_token="")
    try:
        token = (data / "admin-token").read_text().strip()
        assert len(token) >= 40 and (data / "admin-token").stat().st_mode & 0o777 == 0o600
        assert [p.name for p in data.iterdir() if p.name.startswith(".admin-token")] == []
        warning = [line for line in node.log().splitlines() if "holds no admin token" in line]
        assert warning and token not in warning[0]
        assert node.log().count(token) == 1  # printed once on the console, as when created
        for empty in ("Bearer ", "Bearer", ""):
            answer = requests.get(f"{node.url}/model-centric/processes", timeout=10,
                                  headers={"Authorization": empty})
            assert answer.status_code == 401
        answer = requests.get(f"{node.url}/model-centric/processes", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
    finally:
        node.stop()
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(("how", "expected"), [
    ({"admin_token": "   "}, "the admin token (--admin-token, GRID_ADMIN_TOKEN) is empty"),
    ({"file": b"\xff\xfe token"}, "is not UTF-8 text"),
    ({"file": b"two words\n"}, "printable ASCII without spaces"),
])
def test_an_unusable_admin_token_stops_the_node_with_a_message(tmp_path, how, expected):
    data = tmp_path / "node"
    data.mkdir()
    if "file" in how:
        (data / "admin-token").write_bytes(how["file"])
    with pytest.raises(RuntimeError) as failure:
        start_node(data_dir=data, admin_token=how.get("admin_token", ""))
    message = str(failure.value)
    assert "exited with 1" in message and expected in message and "Traceback" not in message
