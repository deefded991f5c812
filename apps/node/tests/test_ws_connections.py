"""WebSocket connections against a real Node: no compression, one descriptor per socket, the TCP
stream ends with the WebSocket, and the message limit holds on what arrives."""

from __future__ import annotations

import os
import socket
import time

import websocket

from fedgrid_server.testing import wait_for


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
