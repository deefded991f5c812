"""Device-token verification: JWT settings checks and the external verification endpoint."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from fedgrid_node.auth.device_tokens import (
    AuthConfigError,
    check_auth_settings,
    verify_device_token,
)
from fedgrid_protocol.errors import ApiError

SECRET = "unit-test-secret-long-enough-for-hmac-sha-256-checks"


class _Verifier(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b"slow" in body:
            time.sleep(2)
        self.send_response(200 if b'"good"' in body else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def verifier_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/verify"
    server.shutdown()


def code_of(settings, token):
    try:
        verify_device_token(settings, token)
    except ApiError as exc:
        return exc.code
    return "ok"


def test_open_process_needs_no_token():
    assert verify_device_token(None, None) == {}


def test_external_endpoint_accepts_refuses_and_times_out(verifier_url):
    settings = {"type": "endpoint", "url": verifier_url, "timeout": 0.5}
    assert code_of(settings, "good") == "ok"
    assert code_of(settings, "bad") == "auth_token_invalid"
    assert code_of(settings, "slow") == "auth_endpoint_unavailable"
    closed = {"type": "endpoint", "url": "http://127.0.0.1:9/verify", "timeout": 0.5}
    assert code_of(closed, "good") == "auth_endpoint_unavailable"


def test_audience_and_issuer_are_checked_when_configured():
    settings = {"type": "jwt", "secret": SECRET, "audience": "fedgrid", "issuer": "lab"}
    exp = int(time.time()) + 60
    good = jwt.encode({"exp": exp, "aud": "fedgrid", "iss": "lab"}, SECRET, algorithm="HS256")
    assert code_of(settings, good) == "ok"
    other = jwt.encode({"exp": exp, "aud": "else", "iss": "lab"}, SECRET, algorithm="HS256")
    assert code_of(settings, other) == "auth_token_invalid"


def test_leeway_tolerates_small_clock_skew():
    token = jwt.encode({"exp": int(time.time()) - 5}, SECRET, algorithm="HS256")
    assert code_of({"secret": SECRET}, token) == "auth_token_expired"
    assert code_of({"secret": SECRET, "leeway": 30}, token) == "ok"


@pytest.mark.parametrize(
    "settings",
    [
        {"type": "magic"},
        {"type": "jwt", "algorithms": ["none"], "secret": SECRET},
        {"type": "jwt", "algorithms": ["HS256"]},
        {"type": "jwt", "public_key": "not a key"},
        {"type": "endpoint", "url": "ftp://example"},
        {"type": "jwt", "secret": SECRET, "algorithms": []},
    ],
)
def test_unusable_settings_are_refused_at_hosting(settings):
    with pytest.raises(AuthConfigError):
        check_auth_settings(settings)
