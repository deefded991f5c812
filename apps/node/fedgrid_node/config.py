"""Node configuration: command-line flags and environment variables, compatible with PyGrid's Node.

Precedence: a flag given on the command line, then the environment variable, then the default.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 5000
DEFAULT_MAX_BODY_MB = 64


@dataclass
class NodeConfig:
    node_id: str = "fedgrid-node"
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    # Public address other parties (the Network, devices routed to us) use to reach this Node.
    address: str | None = None
    network_url: str | None = None
    # Shared secret the Network asks of Nodes joining it (NETWORK_SECRET).
    network_secret: str | None = None
    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("var/node"))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    admin_token: str | None = None
    num_replicas: int | None = None
    # Origins whose pages may call the API from a browser ("*" any; () none); see cors.py.
    cors_origins: tuple[str, ...] = ("*",)
    # Request bodies (and WebSocket messages) above this size are refused with `body_too_large`.
    max_body_bytes: int = DEFAULT_MAX_BODY_MB * 1024 * 1024

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: DATABASE_URL, or an embedded SQLite file in the data directory."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'node.db').resolve()}"


def normalize_database_url(url: str) -> str:
    """Pick a driver that cooperates with gevent when the URL names none.

    pg8000 is pure Python, so under gevent's monkey-patched sockets a slow query yields to other
    requests instead of blocking the hub (psycopg2 would need a wait callback for that).
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+pg8000://" + url[len(prefix) :]
    return url
