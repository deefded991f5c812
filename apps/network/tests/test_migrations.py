"""The Network's Alembic migrations build exactly the schema the models declare, and carry a
registry from before replicas over: each Node's heartbeat becomes its one replica's."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from fedgrid_network.db.database import Database
from fedgrid_network.db.models import Base, HostedProcess, NodeReplica
from fedgrid_server.config import normalize_database_url
from tests.support.databases import database_backends, make_database_url


def _upgrade_to(db: Database, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(db.migrations_dir))
    config.attributes["engine"] = db.engine
    command.upgrade(config, revision)


@pytest.mark.parametrize("backend", database_backends())
def test_a_registry_from_before_replicas_is_carried_over(backend, tmp_path):
    database = make_database_url(backend, tmp_path)
    url = normalize_database_url(database.url) if database.url else f"sqlite:///{tmp_path / 'n.db'}"
    db = Database(url)
    beat = datetime(2030, 1, 1, 12, 0, 0)
    try:
        _upgrade_to(db, "0001")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO nodes (id, address, token_hash, joined_at, last_heartbeat, left_at, "
                "health, devices, load) VALUES ('alice', 'http://alice:5000', 'h', :t, :t, NULL, "
                "'degraded', 3, 2.5)"), {"t": beat})
            connection.execute(text(
                "INSERT INTO hosted_processes (node_id, name, version, status, accepted, reported) "
                "VALUES ('alice', 'mnist', '1', 'open', 0, 0)"))
        db.upgrade()
        db.upgrade()  # a second start finds nothing to do
        with db.session() as session:
            replicas = [(r.node_id, r.replica, r.last_heartbeat, r.left_at, r.health, r.devices,
                         r.load) for r in session.scalars(select(NodeReplica))]
            hosted = [(p.node_id, p.name) for p in session.scalars(select(HostedProcess))]
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert replicas == [("alice", "", beat, None, "degraded", 3, 2.5)]
        # The columns left `nodes` without rebuilding it: its hosted processes are still there.
        assert hosted == [("alice", "mnist")]
        assert differences == []
    finally:
        db.dispose()
        database.drop()
