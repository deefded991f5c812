"""gevent WSGI server for the Node and the Network, and `serve()`.

- TCP_NODELAY on every accepted connection. Without it, Nagle's algorithm and delayed ACKs make
  each keep-alive request wait ~40 ms (gevent issue 1233): a Flask GET did 1,125 req/s without it
  and 5,096 with it on our machines.
- Timeouts, so that idle or slow clients cannot hold connections (and file descriptors) forever:
  every read or write on a connection that makes no progress for ``idle_timeout`` seconds ends it
  (this also closes idle keep-alive connections), and a request's head (request line and headers)
  must arrive whole within ``header_timeout`` seconds of its first byte (slowloris).
- A bounded number of connections, below the open-files limit (which `serve()` raises to its hard
  limit): past it, new clients wait in the listen backlog instead of failing with EMFILE.
- Errors that gevent answers itself (414, bad request lines, too many headers, a request head too
  slow) are JSON with a stable code, like every other error of the servers.
- WebSocket upgrades: no extension (permessage-deflate) is ever negotiated, so the message limit
  holds on the bytes received; the connection's socket is not duplicated (one descriptor per
  WebSocket); the TCP stream ends when the WebSocket does.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import signal
import socket

import gevent
import gevent.pool
from gevent import pywsgi
from gevent import socket as gsocket

DEFAULT_IDLE_TIMEOUT = 60.0  # seconds
DEFAULT_HEADER_TIMEOUT = 20.0  # seconds
# Descriptors kept for the server itself (database files and connections, logs, the listener).
RESERVED_DESCRIPTORS = 128

_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def _json_error(status: int, code: str, message: str) -> tuple[str, bytes]:
    """(status, the whole HTTP response) for a JSON error that closes the connection."""
    body = json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n")
    return str(status), head.encode("latin-1") + body


class _UndupableSocket(gsocket.socket):
    """The connection's own socket, handed to simple_websocket: it falls back to using this
    socket when ``dup()`` is not implemented, instead of holding a second descriptor."""

    __slots__ = ()

    def dup(self):
        raise NotImplementedError


class _HeadTimeout(Exception):
    pass


class HardenedWSGIHandler(pywsgi.WSGIHandler):
    _head_timer: gevent.Timeout | None = None

    def read_requestline(self):
        # Wait (at most idle_timeout, the socket's timeout) for the request's first byte; from
        # then on the whole head must arrive within header_timeout.
        if not self.rfile.peek(1):
            return ""
        self._head_timer = gevent.Timeout.start_new(self.server.header_timeout, _HeadTimeout)
        return super().read_requestline()

    def read_request(self, raw_requestline):
        try:
            return super().read_request(raw_requestline)
        finally:
            self._cancel_head_timer()

    def _cancel_head_timer(self):
        if self._head_timer is not None:
            self._head_timer.close()
            self._head_timer = None

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        except _HeadTimeout:  # while reading the request line
            return self._head_timed_out()
        finally:
            self._cancel_head_timer()
        if isinstance(result, tuple) and result[0] == "414":
            return _json_error(414, "http_error",
                               f"the request line is longer than {pywsgi.MAX_REQUEST_LINE} bytes")
        return result

    def _head_timed_out(self):
        self.close_connection = True
        return _json_error(408, "http_error", f"the request's head did not arrive within "
                           f"{self.server.header_timeout:g} s")

    def _handle_client_error(self, ex):
        if isinstance(ex, _HeadTimeout):
            return self._head_timed_out()
        if isinstance(ex, TimeoutError):  # the head stalled for idle_timeout
            return _json_error(408, "http_error",
                               f"the request's head stalled for {self.server.idle_timeout:g} s")
        # One log line, never a traceback: the client sent something that is not HTTP.
        self.log_error("invalid request from %s: %s", self.client_address,
                       str(ex)[:200] or type(ex).__name__)
        text = str(ex).lower()
        if "header" in text and ("more than" in text or "too long" in text):
            return _json_error(431, "http_error", "too many or too long request headers")
        return _json_error(400, "bad_request", "the request is not valid HTTP/1.1")

    def _send_error_response_if_possible(self, error_code):
        if self.response_length:
            self.close_connection = True
            return
        status, response = _json_error(error_code, "bad_request" if error_code == 400 else
                                       "internal_error", _REASONS[error_code])
        try:
            self.socket.sendall(response)
            self.response_length = len(response)
        except OSError:
            pass
        self.close_connection = True

    def get_environ(self):
        environ = super().get_environ()
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            # Compression is never negotiated: the message size limit applies to what arrives.
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            if type(self.socket) is gsocket.socket:
                self.socket.__class__ = _UndupableSocket
            # The connection ends with the WebSocket (or with the refusal of the upgrade).
            self.close_connection = True
        return environ

    def handle_one_response(self):
        upgrade = self.environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        super().handle_one_response()
        if upgrade:
            self.close_connection = True


class HardenedWSGIServer(pywsgi.WSGIServer):
    handler_class = HardenedWSGIHandler

    def __init__(self, *args, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout

    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (e.g. a Unix socket): nothing to tune
            pass
        sock.settimeout(self.idle_timeout)
        return super().handle(sock, address)



def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard limit (as servers usually do); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


# glibc's mallopt parameter number for the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_large_buffers_to_the_system() -> bool:
    """Fix glibc's mmap threshold at its default (128 KiB) so that large buffers (request
    bodies, WebSocket messages being assembled, diffs) are mapped on their own and unmapped when
    freed. Left dynamic, glibc raises the threshold after the first large free, and from then on
    such buffers come from the heap: after a burst of large messages the freed heap stays with
    the process (40 slow 768 KiB WebSocket messages left ~45 MiB behind for good). Returns False
    where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def max_connections(open_files: int) -> int:
    """Connections served at once: the open-files limit less what the server keeps for itself."""
    return max(16, open_files - RESERVED_DESCRIPTORS)


def serve(app, host: str, port: int, *, name: str, on_stop=None,
          idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
          header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, finish requests and run ``on_stop``.

    ``name`` ("Node", "Network") names the server in its log lines and its logger
    (``fedgrid.<name>.server``).
    """
    log = logging.getLogger(f"fedgrid.{name.lower()}.server")
    return_large_buffers_to_the_system()
    open_files = raise_open_files_limit()
    limit = max_connections(open_files)
    # No access log: the Node's query strings carry request keys, which are secrets for the
    # cycle's duration; keep request lines out of the logs everywhere.
    server = HardenedWSGIServer((host, port), app, log=None, error_log=log,
                                spawn=gevent.pool.Pool(limit), idle_timeout=idle_timeout,
                                header_timeout=header_timeout)
    try:
        server.start()
    except OSError as exc:  # the port is taken, or below 1024 without the right: one line
        raise SystemExit(f"fedgrid-{name.lower()}: cannot listen on {host}:{port}: "
                         f"{os.strerror(exc.errno) if exc.errno else exc}") from None
    log.info("Fedgrid %s listening on http://%s:%d", name, host, server.server_port)
    log.info("open-files limit %d: at most %d connections at once; idle timeout %g s, "
             "request head timeout %g s", open_files, limit, idle_timeout, header_timeout)

    def shutdown():
        log.info("shutting down")
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, shutdown)
    gevent.signal_handler(signal.SIGINT, shutdown)
    server.serve_forever()
    if on_stop is not None:
        on_stop()
