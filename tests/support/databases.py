"""Throw-away databases for tests: a SQLite file, or a fresh PostgreSQL database per use."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def database_backends() -> list[str]:
    """SQLite always; PostgreSQL too when `make test` started it (FEDGRID_TEST_POSTGRES_URL)."""
    return ["sqlite", "postgresql"] if os.environ.get("FEDGRID_TEST_POSTGRES_URL") else ["sqlite"]


@dataclass
class TestDatabase:
    url: str | None  # None: the Node's default (SQLite in its data directory)
    name: str | None = None
    admin_url: str | None = None

    def drop(self) -> None:
        if self.name is None:
            return
        import pg8000.native

        parts = urlsplit(self.admin_url)
        connection = pg8000.native.Connection(
            user=parts.username, password=parts.password, host=parts.hostname,
            port=parts.port or 5432, database=parts.path.lstrip("/") or "postgres",
        )
        try:
            connection.run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            connection.close()


def make_database_url(backend: str, data_dir: Path) -> TestDatabase:
    if backend == "sqlite":
        return TestDatabase(url=None)
    import pg8000.native

    admin_url = os.environ["FEDGRID_TEST_POSTGRES_URL"]
    parts = urlsplit(admin_url)
    name = f"fedgrid_test_{uuid.uuid4().hex[:12]}"
    connection = pg8000.native.Connection(
        user=parts.username, password=parts.password, host=parts.hostname,
        port=parts.port or 5432, database=parts.path.lstrip("/") or "postgres",
    )
    try:
        connection.run(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    return TestDatabase(url=url, name=name, admin_url=admin_url)
