"""A Node that cannot start (its database, its port) says so in one line and exits non-zero.

A wrong PostgreSQL password used to print a 143-line traceback through SQLAlchemy and the driver;
the operator needs the URL they gave (without its password) and the database's reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from fedgrid_server.testing import free_port, server_env
from tests.support.databases import database_backends


def _start(database_url: str | None, data_dir, port: int | None = None) -> subprocess.CompletedProcess:
    env = server_env(os.environ, drop=("GRID_ADMIN_TOKEN",), database_url=database_url)
    return subprocess.run(
        [sys.executable, "-m", "fedgrid_node", "--host", "127.0.0.1",
         "--port", str(port or free_port()),
         "--data-dir", str(data_dir), "--admin-token=t"],
        capture_output=True, text=True, env=env, timeout=120,
    )


def _wrong_password_url(driver: str = "psycopg") -> tuple[str, str]:
    parts = urlsplit(os.environ["FEDGRID_TEST_POSTGRES_URL"])
    netloc = f"{parts.username}:not-the-password-x7@{parts.hostname}:{parts.port or 5432}"
    scheme = "postgresql" if driver == "psycopg" else f"postgresql+{driver}"
    return urlunsplit((scheme, netloc, parts.path, "", "")), (
        f"fedgrid-node: cannot use the database postgresql+{driver}://{parts.username}:***@"
        f"{parts.hostname}:{parts.port or 5432}{parts.path}: password authentication failed "
        f'for user "{parts.username}"')


@pytest.mark.parametrize("backend", [*database_backends(), *(
    ["postgresql+pg8000"] if "postgresql" in database_backends() else [])])
def test_an_unusable_database_is_one_line_without_the_password(backend, tmp_path):
    if backend.startswith("postgresql"):
        url, expected = _wrong_password_url(backend.partition("+")[2] or "psycopg")
    else:  # a SQLite file in a directory that does not exist
        url = f"sqlite:///{tmp_path}/missing-dir/node.db"
        expected = (f"fedgrid-node: cannot use the database sqlite:///{tmp_path}/missing-dir/"
                    "node.db: unable to open database file")
    finished = _start(url, tmp_path / "data")
    assert finished.returncode != 0
    assert finished.stderr.splitlines() == [expected]
    assert "not-the-password-x7" not in finished.stderr + finished.stdout


@pytest.mark.parametrize(("url", "shown", "why"), [
    ("nonsense", "(the configured DATABASE_URL)", "Could not parse SQLAlchemy URL"),
    ("mysql://someone:secret-x7@db/node", "mysql://someone:***@db/node", "No module named 'MySQLdb'"),
])
def test_a_url_that_is_not_a_supported_database_is_one_line(url, shown, why, tmp_path):
    finished = _start(url, tmp_path / "data")
    assert finished.returncode != 0
    [line] = finished.stderr.splitlines()
    assert line.startswith(f"fedgrid-node: cannot use the database {shown}: not a SQLite or "
                           f"PostgreSQL URL ({why}")
    assert "secret-x7" not in finished.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = _start(None, tmp_path / "data", port)
    assert finished.returncode != 0
    assert finished.stderr.splitlines()[-1] == (
        f"fedgrid-node: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in finished.stderr
