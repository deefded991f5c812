"""The Network's database: the shared engine, sessions and upgrade (`fedgrid_server.database`)
with the Network's own Alembic migrations (migrations/versions/)."""

from __future__ import annotations

from pathlib import Path

from fedgrid_server.database import Database as ServerDatabase


class Database(ServerDatabase):
    migrations_dir = Path(__file__).parent / "migrations"
    # Heartbeats and lookups are light: a smaller PostgreSQL pool, and SQLite unpooled (NullPool,
    # a connection per use).
    pool_size = 5
    max_overflow = 10
    sqlite_pooled = False
