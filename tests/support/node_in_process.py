"""A Node app in the test's own process, on a database of the given backend: for tests that
reach into its engine (hold a fold, count flushes, make a flush fail) while its routes answer
through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from flask.testing import FlaskClient

from tests.support.databases import make_database_url


def node_in_process(tmp_path: Path, backend: str) -> Iterator[FlaskClient]:
    """Yield the Node's test client (admin token "admin-token"); stop its engine and drop its
    database after. Use with ``yield from`` in a fixture."""
    from fedgrid_node.app import create_app
    from fedgrid_node.config import NodeConfig

    database = make_database_url(backend, tmp_path)
    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin-token",
                                database_url=database.url))
    try:
        yield app.test_client()
    finally:
        app.extensions["fedgrid"].engine.stop()
        app.extensions["fedgrid"].engine.db.dispose()
        database.drop()
