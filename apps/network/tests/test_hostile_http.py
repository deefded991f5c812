"""Hostile HTTP against a real Network: odd Authorization values, 405 without Allow, oversized
chunked bodies, and secret files that hold no secret (issue 16)."""

from __future__ import annotations

import pytest
import requests

from fedgrid_network.testing import start_network
from tests.support import raw_http


@pytest.mark.parametrize(("method", "path", "prefix"), [
    ("DELETE", "/nodes/someone", "admin_token"),
    ("POST", "/join", "registration_secret"),
    ("POST", "/heartbeat", "node_token"),
])
@pytest.mark.parametrize(("value", "status"), [
    (b"Bearer \xc3\xa9\xc3\xa9", 403),
    (b"Bearer \xff\xfe", 403),
    (b"\xff", 401),
    (b"Basic dXNlcjpwYXNz", 401),
    (b"Bearer", 401),
    (b"Bearer    ", 401),
    (b"Bearer " + b"a" * 20000, 401),
])
def test_odd_authorization_headers_get_the_coded_401_or_403(network, method, path, prefix, value,
                                                            status):
    body = b'{"node_id": "someone", "address": "http://someone:5000"}'
    answer = raw_http.request(network.port, method, path, body=body if method == "POST" else b"",
                              headers={"Authorization": value, "Content-Type": "application/json"})
    if prefix == "node_token" and status == 403:
        # A well-formed but unknown node token: the heartbeat of an unknown Node.
        assert 400 <= answer.status < 500 and answer.status != 401, answer.body[:300]
        return
    expected = f"{prefix}_required" if status == 401 else f"{prefix}_invalid"
    assert (answer.status, answer.error_code) == (status, expected), answer.body[:300]


def test_405_answers_say_which_methods_are_allowed(network):
    answer = raw_http.request(network.port, "PUT", "/route")
    assert (answer.status, answer.error_code) == (405, "method_not_allowed")
    assert "GET" in {m.strip() for m in answer.headers["allow"].split(",")}


def test_a_chunked_body_over_the_limit_is_refused_not_truncated(network):
    body = b'{"node_id": "big", "address": "http://big:5000", "pad": "' + b"x" * 5_000_000 + b'"}'
    answer = raw_http.request(network.port, "POST", "/join", chunked=True, body=body, headers={
        "Authorization": f"Bearer {network.secret}", "Content-Type": "application/json"})
    assert (answer.status, answer.error_code) == (413, "body_too_large"), answer.body[:300]
    small = b'{"node_id": "chunky", "address": "http://chunky:5000"}'
    answer = raw_http.request(network.port, "POST", "/join", chunked=True, body=small, headers={
        "Authorization": f"Bearer {network.secret}", "Content-Type": "application/json"})
    assert answer.status == 200, answer.body[:300]


def test_empty_secret_files_are_replaced_never_valid(tmp_path):
    data = tmp_path / "network"
    data.mkdir()
    (data / "network-secret").write_text("")
    (data / "admin-token").write_text(" \n")
    network = start_network(data_dir=data, secret="", admin_token="")
    try:
        secret = (data / "network-secret").read_text().strip()
        admin = (data / "admin-token").read_text().strip()
        assert len(secret) >= 40 and len(admin) >= 40
        for name in ("network-secret", "admin-token"):
            assert (data / name).stat().st_mode & 0o777 == 0o600
        log = network.log()
        warnings = [line for line in log.splitlines() if "holds no" in line]
        assert len(warnings) == 2 and not any(secret in w or admin in w for w in warnings)
        refused = requests.post(f"{network.url}/join", timeout=10, headers={
            "Authorization": "Bearer "}, json={"node_id": "a", "address": "http://a:1"})
        assert refused.status_code == 401
        joined = requests.post(f"{network.url}/join", timeout=10, headers={
            "Authorization": f"Bearer {secret}"}, json={"node_id": "a", "address": "http://a:1"})
        assert joined.status_code == 200
    finally:
        network.stop()
    assert "Traceback" not in network.log()


def test_a_whitespace_secret_given_stops_the_network_with_a_message(tmp_path):
    with pytest.raises(RuntimeError) as failure:
        start_network(data_dir=tmp_path / "network", secret="   ")
    message = str(failure.value)
    assert "exited with 1" in message and "is empty" in message and "Traceback" not in message
