"""Shared fixtures for every test suite: real Node processes on SQLite or PostgreSQL, and a real
Network process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fedgrid_network.testing import start_network  # noqa: E402
from tests.support.databases import database_backends, make_database_url  # noqa: E402
from tests.support.leaked_servers import kill, running_servers  # noqa: E402
from tests.support.node_process import RunningNode, start_node  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaked_servers():
    """Fail a test that leaves a Node or Network process running after its own fixtures are
    torn down (wider-scoped fixtures' servers were running before it began, so they pass)."""
    before = set(running_servers())
    yield
    leaked = {pid: args for pid, args in running_servers().items() if pid not in before}
    kill(leaked)
    assert not leaked, f"the test left servers running (now killed): {sorted(leaked.values())}"


@pytest.fixture
def node_factory(tmp_path_factory):
    """Start real Node processes; each is stopped (and its database dropped) after the test."""
    started: list[tuple[RunningNode, object]] = []

    def factory(backend: str = "sqlite", **options) -> RunningNode:
        data_dir = tmp_path_factory.mktemp("node")
        database = make_database_url(backend, data_dir)
        node = start_node(data_dir=data_dir, database_url=database.url, **options)
        started.append((node, database))
        return node

    yield factory
    for node, database in reversed(started):
        node.stop_all()  # restarts included: a test's `node = node.restart()` drops the first
        database.drop()


@pytest.fixture(scope="session", params=database_backends())
def shared_node(request, tmp_path_factory):
    """One Node per database backend for the whole session; tests host uniquely named models."""
    data_dir = tmp_path_factory.mktemp(f"shared-node-{request.param}")
    database = make_database_url(request.param, data_dir)
    node = start_node(data_dir=data_dir, database_url=database.url)
    node.backend = request.param
    yield node
    node.stop_all()
    database.drop()
    # Every refusal the tests provoke must be an answered ApiError, never an unhandled exception.
    assert "Traceback" not in node.log(), f"the shared Node logged a traceback:\n{node.log()}"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """One real Network process per test module (modules may override `network` with their own)."""
    running = start_network(data_dir=tmp_path_factory.mktemp("network"))
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


def pytest_report_header(config):
    return f"database backends: {', '.join(database_backends())} (FEDGRID_TEST_POSTGRES_URL={'set' if os.environ.get('FEDGRID_TEST_POSTGRES_URL') else 'unset'})"
