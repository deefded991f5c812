"""A minimal HTTP upstream for testing what a load balancer does when a server misbehaves in a way a
real Node cannot be made to on cue: read a whole request, then close the connection without a
word (as a replica killed while it handles a request does, after it may have acted on it).

It answers `GET /health` with 200 (so health checks keep it in the pool) and records every other
request it receives (method, path, headers), whether it answers it or drops it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from dataclasses import dataclass


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class StubUpstream:
    """``drop=True``: every request except the health check is read in full, then the connection is
    closed with no answer. ``drop=False``: answered 200 with ``{"upstream": <name>}``."""

    def __init__(self, name: str, *, drop: bool) -> None:
        self.name = name
        self.drop = drop
        self.received: list[Received] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                stub._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def requests(self, method: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if method is None or r.method == method]

    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            body += chunk
        if path == "/health":
            self._answer(sock, {"status": "ok"})
            return
        with self._lock:
            self.received.append(Received(method, path, headers, body))
        if self.drop:
            sock.close()  # no status line, no byte: an empty response
            return
        self._answer(sock, {"upstream": self.name})

    @staticmethod
    def _answer(sock: socket.socket, body: dict) -> None:
        payload = json.dumps(body).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                     + payload)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
