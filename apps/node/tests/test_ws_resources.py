"""What hostile WebSocket clients can cost a real Node: compressed frames (never negotiated) and
many slow, half-sent messages must not stop other clients, and their memory must go with them."""

from __future__ import annotations

import os
import socket
import struct
import zlib

import requests
import websocket

from fedgrid_server.testing import wait_for
from tests.support.node_process import GLIBC_ALLOCATOR

CONNECTIONS = 40
# Each slow sender declares a message just under the Node's limit and sends most of it.
LIMIT_BYTES = 1024 * 1024
SENT_BYTES = 768 * 1024


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def frame_head(opcode: int, length: int, *, rsv1: bool = False) -> bytes:
    """A client frame's head (masked with the zero key, so the payload goes as it is)."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00"


def upgraded(node, *, offer_deflate: bool = False) -> socket.socket:
    header = ["Sec-WebSocket-Extensions: permessage-deflate"] if offer_deflate else []
    ws = websocket.create_connection(node.ws_url, timeout=10, header=header)
    assert ws.getheaders().get("sec-websocket-extensions") is None
    return ws.sock


def close_code(sock: socket.socket) -> int | None:
    """The code of the Close frame the Node sent before it ended the stream, or None when the
    stream was reset (the Node closed with the client's bytes still unread: the kernel then
    discards what it had sent). Fails if the Node keeps the stream open."""
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return None
    assert data[:1] == b"\x88", data[:16]
    return int.from_bytes(data[2:4], "big")


def still_served(node) -> None:
    answer = requests.get(f"{node.url}/health", timeout=10)
    assert answer.status_code == 200
    ws = websocket.create_connection(node.ws_url, timeout=10)
    ws.send('{"type": "model-centric/authenticate", "request_id": 7, "data": {}}')
    assert '"request_id": 7' in ws.recv().replace('"request_id":7', '"request_id": 7')
    ws.close()


def test_compressed_frames_and_slow_senders_neither_block_others_nor_leave_memory(node_factory):
    node = node_factory(extra_args=["--max-body-mb", str(LIMIT_BYTES / 2**20)],
                        env=GLIBC_ALLOCATOR)  # RSS must tell memory held from memory kept
    pid = node.process.pid
    still_served(node)  # warm: the first request's imports and caches are not a leak
    baseline_rss, baseline_fds = rss(pid), descriptors(pid)

    # A deflate bomb: 64 MiB of zeros is ~64 KiB compressed. The extension was not negotiated,
    # so a frame with RSV1 set is a protocol error (1002), never inflated.
    compressor = zlib.compressobj(wbits=-15)
    bomb = compressor.compress(b"\x00" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    for _ in range(5):
        sock = upgraded(node, offer_deflate=True)
        sock.sendall(frame_head(0x2, len(bomb), rsv1=True) + bomb)
        assert close_code(sock) in (1002, None)
        sock.close()

    # Slow senders: each has most of a large message in flight and then stalls. Two rounds: what
    # a round leaves behind would add up.
    for _ in range(2):
        slow = [upgraded(node) for _ in range(CONNECTIONS)]
        for sock in slow:
            sock.sendall(frame_head(0x2, LIMIT_BYTES - 1024) + b"\x01" * SENT_BYTES)
        still_served(node)  # others are answered while all of them hold their half messages
        for sock in slow:
            sock.close()
        wait_for(lambda: descriptors(pid) <= baseline_fds, timeout=10, what="descriptors released")
        # The half messages went with their connections (40 of them are 30 MiB).
        wait_for(lambda: rss(pid) < baseline_rss + (16 << 20), timeout=10,
                 what=f"RSS back near {baseline_rss / 2**20:.0f} MiB")
    still_served(node)
    assert "Traceback" not in node.log()
