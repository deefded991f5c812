"""Alembic environment: the Node's models, run by the shared environment (fedgrid_server.migrations)."""

from fedgrid_node.db.models import Base
from fedgrid_server.migrations import run_migrations

run_migrations(Base.metadata)
