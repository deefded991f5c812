"""Timeouts, connection limits and gevent's own errors, against a real server process on loopback:
idle and slowloris sockets are closed after the configured time and never lock other clients
out, even past the open-files limit; what gevent answers itself is JSON."""

from __future__ import annotations

import json
import resource
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from fedgrid_server import testing

SERVER = """
import argparse
import sys

from fedgrid_server import cli

parser = argparse.ArgumentParser()
cli.add_listen_arguments(parser, env_prefix="GRID_THING", default_port=0)
cli.add_timeout_arguments(parser)
cli.add_log_level_argument(parser)
args = cli.start(parser, sys.argv[1:])
cli.check_timeouts(args)

import logging

from flask import Flask

from fedgrid_server.errors import register_error_handlers
from fedgrid_server.server import serve

app = Flask("thing")
app.get("/health")(lambda: {"status": "ok"})
register_error_handlers(app, name="Thing", log=logging.getLogger("fedgrid.thing"))
serve(app, args.host, args.port, name="Thing", idle_timeout=args.idle_timeout,
      header_timeout=args.header_timeout)
"""


class RunningThing(testing.ServerProcess):
    name = "Thing"


def start_thing(tmp_path, *args: str, nofile: tuple[int, int] | None = None) -> RunningThing:
    (tmp_path / "limits_server.py").write_text(textwrap.dedent(SERVER))
    port = testing.free_port()
    log_path = tmp_path / "thing.log"
    preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)) if nofile else None
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "limits_server", "--host", "127.0.0.1", "--port", str(port),
             *args], stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec,
            env={"PYTHONPATH": str(tmp_path), **{k: v for k, v in __import__("os").environ.items()
                                                 if k.startswith(("PYTHON", "PATH"))
                                                 and k != "PYTHONPATH"}})
    thing = RunningThing(url=f"http://127.0.0.1:{port}", port=port, admin_token="",
                         process=process, log_path=log_path)
    testing.wait_healthy(thing, timeout=30)
    return thing


@pytest.fixture
def things():
    started: list[RunningThing] = []
    yield started
    for thing in started:
        thing.stop(signal.SIGKILL)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def wait_closed(sockets: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Read every socket until the server ends its stream; return what each received."""
    received = {sock: b"" for sock in sockets}
    open_ = set(sockets)
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data = b""
            received[key.fileobj] += data
            if not data:
                selector.unregister(key.fileobj)
                open_.discard(key.fileobj)
    selector.close()
    assert not open_, f"{len(open_)} of {len(sockets)} connections still open after {timeout} s"
    return received


def test_idle_and_slowloris_connections_are_closed_and_lock_nobody_out(tmp_path, things):
    things.append(thing := start_thing(tmp_path, "--idle-timeout", "2", "--header-timeout", "2"))
    opened = time.monotonic()
    idle = [connect(thing.port) for _ in range(50)]
    slow = [connect(thing.port) for _ in range(50)]
    for sock in slow:  # a request head begun, never finished
        sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    # Others are served at once while the 100 connections are open.
    started = time.monotonic()
    assert requests.get(thing.url + "/health", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.5
    received = wait_closed(idle + slow, timeout=15)
    assert time.monotonic() - opened >= 1.5  # not before the timeout
    assert all(received[sock] == b"" for sock in idle)
    for sock in slow:
        head, _, body = received[sock].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body)["error"]["code"] == "http_error"
    # A head trickled a byte at a time (each read makes progress) still ends at the head timeout.
    trickler = connect(thing.port)
    started = time.monotonic()
    trickled = b""
    for byte in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
        try:
            trickler.send(bytes([byte]))
        except OSError:
            break
        if time.monotonic() - started > 8:
            break
        try:
            trickled += trickler.recv(4096)
            break
        except BlockingIOError:
            selectors.DefaultSelector().select(timeout=0.05)  # paces the trickle, not a sync
    assert time.monotonic() - started < 6
    assert trickled.startswith(b"HTTP/1.1 408 ") or trickled == b""
    for sock in idle + slow + [trickler]:
        sock.close()
    assert "Traceback" not in thing.log()


def raw_answer(port: int, request: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), data
    return int(head.split()[1]), json.loads(body)


def test_errors_gevent_answers_itself_are_json(tmp_path, things):
    things.append(thing := start_thing(tmp_path))
    status, body = raw_answer(thing.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert (status, body["error"]["code"]) == (414, "http_error")
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(150))
    status, body = raw_answer(thing.port, b"GET /health HTTP/1.1\r\n" + headers + b"\r\n")
    assert (status, body["error"]["code"]) == (431, "http_error")
    for line in (b"GARBAGE\r\n\r\n", b"GET / HTTP/7.1\r\n\r\n", b"GET /x y z HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        status, body = raw_answer(thing.port, line)
        assert (status, body["error"]["code"]) == (400, "bad_request"), line
    assert requests.get(thing.url + "/health", timeout=5).status_code == 200
    assert "Traceback" not in thing.log()


def test_past_the_open_files_limit_clients_wait_instead_of_failing(tmp_path, things):
    # Soft limit below the hard one: the server raises it to the hard limit and keeps
    # descriptors for itself; connections past its bound wait in the backlog.
    things.append(thing := start_thing(tmp_path, "--idle-timeout", "2", nofile=(100, 200)))
    assert "open-files limit 200: at most 72 connections" in thing.log()
    idle = [connect(thing.port) for _ in range(150)]
    answer = requests.get(thing.url + "/health", timeout=10)  # served once idle ones time out
    assert answer.status_code == 200
    wait_closed(idle, timeout=15)
    assert requests.get(thing.url + "/health", timeout=5).status_code == 200
    assert "Traceback" not in thing.log()
