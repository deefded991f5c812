"""Alembic environment: the Network's models, run by the shared environment (fedgrid_server.migrations)."""

from fedgrid_network.db.models import Base
from fedgrid_server.migrations import run_migrations

run_migrations(Base.metadata)
