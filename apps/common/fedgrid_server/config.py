"""Configuration fields both apps have, and the database URL they resolve to."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass
class ServiceConfig:
    """Base of `NodeConfig` and `NetworkConfig`: each sets its defaults and its database file."""

    # The embedded SQLite file's name in the data directory when no DATABASE_URL is given.
    database_file: ClassVar[str] = "fedgrid.db"

    host: str = "0.0.0.0"
    port: int = 0
    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("var"))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Bearer token for management routes; generated and kept in the data directory if not given.
    admin_token: str | None = None

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: DATABASE_URL, or an embedded SQLite file in the data directory."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / self.database_file).resolve()}"


def normalize_database_url(url: str) -> str:
    """Pick a driver that cooperates with gevent when the URL names none: psycopg (3).

    psycopg waits for the server in Python (psycopg.waiting) and, from 3.1.14, notices gevent's
    monkey-patching and waits through the patched selectors: a slow query yields to other
    requests instead of blocking the hub. Its C parts make it cheaper per query than pg8000
    (pure Python, also cooperative), which stays available as `postgresql+pg8000://`.
    docs/operations.md ("Performance") has the figures.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
