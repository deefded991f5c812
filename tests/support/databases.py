"""Throw-away databases for tests: a SQLite file, or a fresh PostgreSQL database per use."""

from __future__ import annotations

import os
import time
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
        # FORCE ends the test's own leftover sessions, but not an autovacuum worker (it runs as
        # the bootstrap superuser: "must be a member of the role whose process is being
        # terminated"), which the large diffs some tests write and delete can start: wait for it.
        deadline = time.monotonic() + 60
        while True:
            try:
                _run_as_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                return
            except Exception as exc:  # pg8000's DatabaseError, with the server's SQLSTATE
                state = exc.args[0].get("C") if exc.args and isinstance(exc.args[0], dict) else None
                if state not in ("42501", "55006") or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


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
