"""gevent WSGI server with TCP_NODELAY on every accepted connection.

Without TCP_NODELAY every keep-alive request waits ~40 ms for a delayed ACK (gevent issue 1233).
The Network imports nothing of the Node's (see DESIGN.md), so this is its own copy.
"""

from __future__ import annotations

import logging
import signal
import socket

import gevent
from gevent import pywsgi

log = logging.getLogger("fedgrid.network.server")


class NoDelayWSGIServer(pywsgi.WSGIServer):
    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket: nothing to tune
            pass
        return super().handle(sock, address)


def serve(app, host: str, port: int, on_stop=None) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests and run ``on_stop``."""
    # No access log: node tokens travel in headers only, but keep request lines out of logs anyway.
    server = NoDelayWSGIServer((host, port), app, log=None, error_log=log)
    server.start()
    log.info("Fedgrid Network listening on http://%s:%d", host, server.server_port)

    def shutdown():
        log.info("shutting down")
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, shutdown)
    gevent.signal_handler(signal.SIGINT, shutdown)
    server.serve_forever()
    if on_stop is not None:
        on_stop()
