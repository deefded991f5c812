"""An HTTP load generator that can offer more than a Node takes, for the benchmarks.

`requests` from Python threads topped out at 1,300-1,500 `GET /health`/s on the 2-core
development machine: the generator, not the Node, was the bound, so the Node's figures were
ratios to the generator's ceiling. Here each load process drives many keep-alive sockets from one
`selectors` loop and sends the same request bytes, built once, over and over: no HTTP library,
no thread switches, a few microseconds of Python per request. Several processes (`processes`)
share the load, so the generator is not bound to one core either.

Two shapes of load:
- `closed_loop`: each connection sends its next request as soon as the last one is answered (the
  capacity);
- `open_loop`: requests are due at a fixed offered rate whatever the answers' pace, as independent
  devices send them; a due request waits for an idle connection, and its latency is counted from
  its due moment, so a Node that falls behind shows its queueing delay.

Each answer's status must be 200 and its body must contain `expect`; any other answer (or a
dropped connection) is counted as a failure, the first one kept for the error message.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass

STALL_SECONDS = 60.0  # a Node that answers nothing for this long has failed the run


def http_request(method: str, path: str, body: bytes = b"", *, host: str = "127.0.0.1",
                 content_type: str = "application/json") -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if body or method in ("POST", "PUT"):
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    answered: int
    failures: int
    seconds: float
    latencies: list[float]  # sorted, seconds (open loop: from each request's due moment)
    first_failure: bytes | None = None

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * fraction))]


class _Connection:
    """One keep-alive socket and the answer being read from it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = bytearray()
        self.sent_at = 0.0  # when the request in flight was due (open loop) or sent

    def answer(self) -> tuple[int, bytes] | None:
        """The complete answer in the buffer, if there is one: (status, body)."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        length = None
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {head!r}")
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        return int(head.split(" ", 2)[1]), body


def _drive(address, requests: list[bytes], expect: bytes, connections: int,
           interval: float | None, offset: float, ready, go, start_at, results) -> None:
    """One load process: `requests` in order over `connections` sockets; `interval` None is a
    closed loop, else one request is due every `interval` seconds from the start (+ `offset`)."""
    total = len(requests)
    selector = selectors.DefaultSelector()
    idle: deque[_Connection] = deque()
    for _ in range(connections):
        connection = _Connection(address)
        selector.register(connection.sock, selectors.EVENT_READ, connection)
        idle.append(connection)
    ready.put(None)
    go.wait()
    start = start_at.value
    while time.monotonic() < start:
        time.sleep(max(0.0, start - time.monotonic()))
    latencies: list[float] = []
    failures = 0
    first_failure = None
    queued = 0  # requests due, not yet sent
    sent = 0
    due_sent = 0  # open loop: requests whose due moment has come
    in_flight = 0

    def send(connection: _Connection, due: float) -> None:
        nonlocal sent
        connection.sent_at = due
        connection.sock.sendall(requests[sent])  # small: fits the socket buffer at once
        sent += 1

    while len(latencies) < total:
        now = time.monotonic()
        if interval is None:
            while idle and sent < total:
                send(idle.popleft(), now)
                in_flight += 1
            timeout = None
        else:
            while due_sent < total and start + offset + due_sent * interval <= now:
                due_sent += 1
                queued += 1
            while idle and queued:
                # The oldest due request goes first; its latency counts from its due moment.
                due = start + offset + (due_sent - queued) * interval
                send(idle.popleft(), due)
                queued -= 1
                in_flight += 1
            timeout = None
            if due_sent < total:
                timeout = max(0.0, start + offset + due_sent * interval - time.monotonic())
        if not in_flight:
            if timeout:
                time.sleep(timeout)
            continue
        ready_now = selector.select(STALL_SECONDS if timeout is None else timeout)
        if not ready_now and timeout is None:
            raise RuntimeError(f"no answer for {STALL_SECONDS} s ({in_flight} requests in flight)")
        for key, _ in ready_now:
            connection: _Connection = key.data
            chunk = connection.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a keep-alive connection")
            connection.buffer += chunk
            done = connection.answer()
            if done is None:
                continue
            status, body = done
            latencies.append(time.monotonic() - connection.sent_at)
            in_flight -= 1
            if status != 200 or expect not in body:
                failures += 1
                first_failure = first_failure or body[:500]
            idle.append(connection)
    results.put((len(latencies), failures, start, time.monotonic(), latencies, first_failure))
    for connection in list(idle):
        connection.sock.close()


def _run(address, requests: bytes | list[bytes], expect: bytes, processes: int,
         connections: int, total: int, offered: float | None) -> LoadResult:
    if isinstance(requests, bytes):
        requests = [requests] * total
    context = multiprocessing.get_context("fork")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    workers = []
    for index in range(processes):
        share = requests[index::processes]
        interval = offset = None
        if offered:
            # The processes' due moments interleave: together, one request every 1/offered s.
            interval, offset = processes / offered, index / offered
        workers.append(context.Process(
            target=_drive, daemon=True,
            args=(address, share, expect, max(1, connections // processes), interval,
                  offset or 0.0, ready, go, start_at, results)))
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=30)
    start_at.value = time.monotonic() + 0.05
    go.set()
    gathered = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(latency for *_, each, _ in gathered for latency in each)
    failures = [first for *_, first in gathered if first]
    return LoadResult(
        answered=sum(row[0] for row in gathered),
        failures=sum(row[1] for row in gathered),
        seconds=max(row[3] for row in gathered) - min(row[2] for row in gathered),
        latencies=latencies,
        first_failure=failures[0] if failures else None,
    )


def closed_loop(address: tuple[str, int], requests: bytes | list[bytes], *, expect: bytes,
                total: int = 0, connections: int = 16, processes: int = 2) -> LoadResult:
    """`total` times the request (or each of a list of requests once, in turn), each connection
    asking again as soon as it is answered."""
    return _run(address, requests, expect, processes, connections, total, None)


def open_loop(address: tuple[str, int], request: bytes, *, expect: bytes, offered: float,
              seconds: float, connections: int = 64, processes: int = 2) -> LoadResult:
    """`offered` requests per second for `seconds`, whatever the answers' pace."""
    return _run(address, request, expect, processes, connections, int(offered * seconds),
                offered)
