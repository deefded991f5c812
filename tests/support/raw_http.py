"""HTTP/1.1 over a bare socket, for requests that `requests` will not send (raw header bytes,
chunked bodies of a chosen shape) and for clients that vanish mid-answer."""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


def request(port: int, method: str, path: str, *, headers: dict[str, bytes | str] | None = None,
            body: bytes = b"", chunked: bool = False, timeout: float = 10) -> RawAnswer:
    """Send one request (``Connection: close``) and read the whole answer."""
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in (headers or {}).items():
        head.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
        piece = 16 * 1024
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece])
                           for i in range(0, len(body), piece)) + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT"):
            head.append(b"Content-Length: %d" % len(body))
        payload = body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head_bytes, _, rest = bytes(received).partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return RawAnswer(status=int(lines[0].split()[1]), headers=answer_headers, body=rest)


def vanish(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a client that crashes or loses its network."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
