"""Fixtures for the SDK's tests: one real Node for the session, the digits MLP compiled once, and
stub HTTP servers that answer as a test says."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from fedgrid import Admin
from fedgrid.data import load_digits
from tests.support.node_process import start_node

_names = itertools.count(1)


@pytest.fixture(scope="session")
def sdk_node(tmp_path_factory):
    """One SQLite Node for the SDK tests; each test hosts its own uniquely named model."""
    node = start_node(data_dir=tmp_path_factory.mktemp("sdk-node"))
    yield node
    node.stop()


@pytest.fixture(scope="session")
def compiled_mlp():
    """The zoo's digits MLP, compiled once (the researcher side; needs torch)."""
    from fedgrid_plans.zoo import compile_zoo_model

    return compile_zoo_model("digits_mlp")


@pytest.fixture(scope="session")
def digits():
    return load_digits((64,))


@pytest.fixture
def host(sdk_node, compiled_mlp):
    """Host the MLP under a fresh name on ``sdk_node`` (or ``node=``); returns the name."""

    def hosting(*, node=None, client_config=None, server_config=None) -> str:
        node = node or sdk_node
        name = f"sdk-model-{next(_names)}"
        with Admin(node.url, node.admin_token) as admin:
            admin.host_training(compiled_mlp, name, "1.0",
                                client_config=client_config or {"batch_size": 16, "epochs": 1},
                                server_config=server_config or {})
        return name

    return hosting


@dataclass
class StubRequest:
    """What a stub server was sent: the method, the path, the query (parse_qs's) and the body."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self):
        return json.loads(self.body)


# answer(request) -> (status, JSON body) or (status, JSON body, extra headers)
StubAnswer = Callable[[StubRequest], tuple]


class _StubHandler(BaseHTTPRequestHandler):
    answers: dict[str, StubAnswer] = {}  # by method ("GET", "POST"); set per server

    def _respond(self):
        answer = self.answers.get(self.command)
        if answer is None:  # as http.server answers a method it has no do_<METHOD> for
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload, *extra = answer(StubRequest(self.command, parts.path,
                                                     parse_qs(parts.query), body))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra[0] if extra else {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _respond

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_http_server():
    """``serve(get=answer, post=answer)``: an HTTP server on a free loopback port (its ``url``)
    that answers each request with ``answer(StubRequest)`` as JSON; a method without an answer
    gets 501. Every server started is shut down after the test."""
    servers: list[ThreadingHTTPServer] = []

    def serve(*, get: StubAnswer | None = None, post: StubAnswer | None = None):
        answers = {method: answer for method, answer in (("GET", get), ("POST", post)) if answer}
        handler = type("StubHandler", (_StubHandler,), {"answers": answers})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
