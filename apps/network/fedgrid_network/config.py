"""Network configuration: flags, then PyGrid-compatible environment variables, then defaults."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 7000
DEFAULT_HEARTBEAT_INTERVAL = 10.0


@dataclass
class NetworkConfig:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("var/network"))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Bearer token for management routes (removing a Node).
    admin_token: str | None = None
    # Shared with the Nodes allowed to join (NETWORK_SECRET on both sides).
    registration_secret: str | None = None
    # Seconds between a Node's heartbeats; told to each Node when it joins.
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    # A Node silent for longer than this is offline (default: three missed heartbeats).
    offline_after: float | None = None

    @property
    def offline_after_seconds(self) -> float:
        return self.offline_after if self.offline_after else 3 * self.heartbeat_interval

    def resolved_database_url(self) -> str:
        """DATABASE_URL, or an embedded SQLite file in the data directory."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'network.db').resolve()}"


def normalize_database_url(url: str) -> str:
    """Use pg8000 (pure Python: its socket waits yield under gevent) when the URL names no driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+pg8000://" + url[len(prefix) :]
    return url
