"""The Alembic migrations build exactly the schema the models declare, on every database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from fedgrid_node.db.database import Database
from fedgrid_node.db.models import Base
from fedgrid_server.config import normalize_database_url
from tests.support.databases import database_backends, make_database_url


@pytest.mark.parametrize("backend", database_backends())
def test_upgraded_schema_matches_the_models(backend, tmp_path):
    database = make_database_url(backend, tmp_path)
    url = normalize_database_url(database.url) if database.url else f"sqlite:///{tmp_path / 'n.db'}"
    db = Database(url)
    try:
        db.upgrade()
        db.upgrade()  # a second start finds nothing to do
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        db.dispose()
        database.drop()


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_tensor_columns_are_stored_uncompressed_on_postgresql(backend, tmp_path):
    """Diffs and checkpoints are incompressible floats: PostgreSQL must not spend CPU trying."""
    database = make_database_url(backend, tmp_path)
    db = Database(normalize_database_url(database.url))
    try:
        db.upgrade()
        with db.engine.connect() as connection:
            storage = dict(connection.execute(text(
                "SELECT attrelid::regclass::text || '.' || attname, attstorage FROM pg_attribute "
                "WHERE attname = 'data' AND attrelid IN ('report_diffs'::regclass, "
                "'checkpoints'::regclass)")).all())
        assert storage == {"report_diffs.data": "e", "checkpoints.data": "e"}
    finally:
        db.dispose()
        database.drop()
