"""WebSocket connections against a real Node: no compression, one descriptor per socket, the TCP
stream ends with the WebSocket, and the message limit holds on what arrives."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy
import websocket

from fedgrid_server.config import normalize_database_url
from fedgrid_server.testing import wait_for
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import unique_name

from .test_cycle_engine import host, request_place


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    """What the Node sends until it ends the stream; fails if it has not within ``timeout``."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the Node kept the stream open for {timeout} s")


def test_websockets_are_uncompressed_single_descriptor_and_closed_by_the_node(node_factory):
    node = node_factory(extra_args=["--max-body-mb", "0.01"])
    pid = node.process.pid
    before = descriptors(pid)
    offer = ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]
    sockets = [websocket.create_connection(node.ws_url, timeout=10, header=offer)
               for _ in range(10)]
    assert all(ws.getheaders().get("sec-websocket-extensions") is None for ws in sockets)
    # One descriptor each (the connection's socket is not duplicated).
    wait_for(lambda: descriptors(pid) - before <= 10, timeout=5, what="one descriptor per socket")
    assert descriptors(pid) - before >= 10 - 1
    # The client's Close is answered, and the Node ends the TCP stream at once.
    for ws in sockets[:5]:
        ws.send_close()
        assert read_until_eof(ws.sock, timeout=5).startswith(b"\x88")
    # Over the limit (10 KiB here), the Node closes with 1009 and ends the stream, even if the
    # client never answers the close.
    for ws in sockets[5:]:
        ws.send_binary(b"\x00" * 20_000)
        closing = read_until_eof(ws.sock, timeout=5)
        assert closing[:1] == b"\x88" and closing[2:4] == (1009).to_bytes(2, "big")
    wait_for(lambda: descriptors(pid) <= before, timeout=5, what="descriptors released")
    for ws in sockets:
        ws.sock.close()
    assert "Traceback" not in node.log()


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked frame the Node sent (payloads under 126 bytes)."""
    found = []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert length < 126, "the test expects only short control frames"
        found.append((opcode, data[2 : 2 + length]))
        data = data[2 + length :]
    return found


def test_a_socket_that_stops_answering_pings_is_closed_with_1008_and_freed(node_factory):
    node = node_factory(extra_args=["--ws-ping-interval", "0.3"])
    pid = node.process.pid
    before = descriptors(pid)
    # A device that answers pings (websocket-client pongs while it reads) and one that has
    # vanished without a FIN: it never reads, so it never answers.
    alive = websocket.create_connection(node.ws_url, timeout=30, enable_multithread=True)
    answers: list[str] = []
    reader = threading.Thread(target=lambda: answers.append(alive.recv()), daemon=True)
    reader.start()
    silent = websocket.create_connection(node.ws_url, timeout=10)
    sent = frames(read_until_eof(silent.sock, timeout=10))
    opcodes = [opcode for opcode, _ in sent]
    assert set(opcodes[:-1]) == {0x9} and opcodes[-1] == 0x8, opcodes  # pings, then Close
    assert sent[-1][1][:2] == (1008).to_bytes(2, "big")
    wait_for(lambda: descriptors(pid) <= before + 1, timeout=5, what="the silent socket's descriptor")
    # The device that answers was pinged as long and is still served.
    alive.send(json.dumps({"type": "model-centric/authenticate", "request_id": "r1",
                           "data": {"model_name": "none", "model_version": "1"}}))
    reader.join(timeout=10)
    assert json.loads(answers[0])["request_id"] == "r1"
    alive.close()
    silent.sock.close()
    assert "Traceback" not in node.log()


def test_a_ping_interval_at_or_past_the_idle_timeout_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fedgrid_node", "--data-dir", str(tmp_path), "--port", "0",
         "--idle-timeout", "10", "--ws-ping-interval", "10"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--ws-ping-interval must be above 0 and below --idle-timeout" in result.stderr
    assert "Traceback" not in result.stderr


def postgres_sockets_with_unread_requests() -> int:
    """Server-side PostgreSQL sockets (port 5432) holding bytes their backend has not read."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                rx_queue = int(fields[4].split(":")[1], 16)
                if local_port == 5432 and rx_queue > 0:
                    count += 1
    return count


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_a_socket_that_vanishes_while_its_events_wait_on_the_database_breaks_nothing(
        node_factory, backend):
    """A socket closes while its events wait on PostgreSQL: their work ends normally. (They
    were killed there, in the middle of a database round trip: one killed in the pool's
    pre-ping left its connection mid-query and logged a traceback.) The events are held at the
    database by stopping (SIGSTOP) the backends of the Node's pooled connections; the socket is
    closed once their requests wait unread, and the backends resume once the Node let it go."""
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name("vanishing")
    host(api, name, max_diffs=1000, max_workers=1000, cycle_length=600)
    engine = sqlalchemy.create_engine(normalize_database_url(node.env["DATABASE_URL"]))
    try:
        with engine.connect() as observer:
            backends = observer.execute(sqlalchemy.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'idle'")).scalars().all()
        assert backends, "the Node holds pooled connections"
        ws = websocket.create_connection(node.ws_url, timeout=10)
        for pid in backends:
            os.kill(pid, signal.SIGSTOP)
        try:
            for index in range(len(backends)):
                ws.send(json.dumps({"type": "model-centric/authenticate",
                                    "request_id": f"a{index}", "data": {"model_name": name}}))
            wait_for(lambda: postgres_sockets_with_unread_requests() >= 1, timeout=30,
                     what="the events' requests to wait at PostgreSQL")
            holding = descriptors(node.process.pid)
            ws.sock.close()  # gone without a close frame
            wait_for(lambda: descriptors(node.process.pid) < holding, timeout=30,
                     what="the Node to let the socket go")
        finally:
            for pid in backends:
                os.kill(pid, signal.SIGCONT)
    finally:
        engine.dispose()
    # The Node still answers, from every pooled connection, and logged no traceback.
    for _ in range(20):
        assert request_place(api, name)[1]["status"] == "accepted"
    assert "Traceback" not in node.log()
