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
        _run_as_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _run_as_admin(admin_url: str, statement: str) -> None:
    """One statement on the server's maintenance database (CREATE/DROP DATABASE need autocommit)."""
    import pg8000.native

    parts = urlsplit(admin_url)
    connection = pg8000.native.Connection(
        user=parts.username, password=parts.password, host=parts.hostname,
        port=parts.port or 5432, database=parts.path.lstrip("/") or "postgres",
    )
    try:
        connection.run(statement)
    finally:
        connection.close()


def make_database_url(backend: str, data_dir: Path) -> TestDatabase:
    if backend == "sqlite":
        return TestDatabase(url=None)
    admin_url = os.environ["FEDGRID_TEST_POSTGRES_URL"]
    parts = urlsplit(admin_url)
    name = f"fedgrid_test_{uuid.uuid4().hex[:12]}"
    _run_as_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    return TestDatabase(url=url, name=name, admin_url=admin_url)
