"""The Node's database: the shared engine, sessions and upgrade (`fedgrid_server.database`) with
the Node's own Alembic migrations (migrations/versions/)."""

from __future__ import annotations

from pathlib import Path

from fedgrid_server.database import Database as ServerDatabase


class Database(ServerDatabase):
    # The shared defaults: SQLite pooled (the PRAGMAs once per connection), 10 + 20 connections.
    migrations_dir = Path(__file__).parent / "migrations"
