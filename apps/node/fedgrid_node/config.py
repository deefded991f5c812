"""Node configuration: command-line flags and environment variables, compatible with PyGrid's Node.

Precedence: a flag given on the command line, then the environment variable, then the default.
The fields the Network has too (host, port, database, data directory, secrets) and the database
URL's resolution are `fedgrid_server.config.ServiceConfig`'s.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fedgrid_server.config import ServiceConfig

DEFAULT_PORT = 5000
DEFAULT_MAX_BODY_MB = 64
DEFAULT_WS_PING_INTERVAL = 25.0
MAX_REPLICA_ID = 128


@dataclass
class NodeConfig(ServiceConfig):
    database_file: ClassVar[str] = "node.db"

    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path("var/node"))
    node_id: str = "fedgrid-node"
    # Public address other parties (the Network, devices routed to us) use to reach this Node.
    address: str | None = None
    network_url: str | None = None
    # Shared secret the Network asks of Nodes joining it (NETWORK_SECRET).
    network_secret: str | None = None
    num_replicas: int | None = None
    # One of several replicas serving this Node (same --id, ADDRESS and PostgreSQL database, behind
    # a load balancer): its Network membership lives in the shared database (network_membership.py).
    cluster: bool = False
    # This replica's name in its Network heartbeats (--cluster only); default <hostname>-<pid>.
    replica_id: str | None = None
    # Origins whose pages may call the API from a browser ("*" any; () none); see cors.py.
    cors_origins: tuple[str, ...] = ("*",)
    # Serve the device pages cross-origin isolated (COOP + COEP), so browsers allow the SDK
    # threads (SharedArrayBuffer); off for pages that embed third-party content. See isolation.py.
    cross_origin_isolation: bool = True
    # Request bodies (and WebSocket messages) above this size are refused with `body_too_large`.
    max_body_bytes: int = DEFAULT_MAX_BODY_MB * 1024 * 1024
    # Seconds between the Node's pings on a WebSocket; a socket that has not answered the previous
    # ping by the next one is closed with 1008, so a vanished device frees its descriptor.
    ws_ping_interval: float = DEFAULT_WS_PING_INTERVAL

    def check_cluster(self) -> None:
        """Refuse a cluster the database cannot serve: replicas must share one database."""
        if self.cluster and self.resolved_database_url().startswith("sqlite"):
            raise ClusterConfigError("--cluster needs PostgreSQL: replicas share one database")


class ClusterConfigError(ValueError):
    """--cluster with settings replicas cannot run with (e.g. an embedded SQLite database)."""


def default_replica_id() -> str:
    """<hostname>-<pid>: unique among the replicas of one deployment, container or not, and
    within the Network's replica-id rules (letters, digits, '.', '_', '-'; at most 128)."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-") or "replica"
    suffix = f"-{os.getpid()}"
    return host[: MAX_REPLICA_ID - len(suffix)] + suffix
