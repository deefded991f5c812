"""Network configuration: flags, then PyGrid-compatible environment variables, then defaults.

The fields the Node has too (host, port, database, data directory, secrets) and the database URL's
resolution are `fedgrid_server.config.ServiceConfig`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fedgrid_server.config import ServiceConfig

DEFAULT_PORT = 7000
DEFAULT_HEARTBEAT_INTERVAL = 10.0


@dataclass
class NetworkConfig(ServiceConfig):
    database_file: ClassVar[str] = "network.db"

    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path("var/network"))
    # Shared with the Nodes allowed to join (NETWORK_SECRET on both sides).
    registration_secret: str | None = None
    # Seconds between a Node's heartbeats; told to each Node when it joins.
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    # A Node silent for longer than this is offline (default: three missed heartbeats).
    offline_after: float | None = None

    @property
    def offline_after_seconds(self) -> float:
        return self.offline_after if self.offline_after else 3 * self.heartbeat_interval
