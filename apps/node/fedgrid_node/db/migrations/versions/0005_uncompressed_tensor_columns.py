"""store diffs and checkpoints uncompressed on PostgreSQL

PostgreSQL tries to compress every value over 2 KiB (column storage EXTENDED). Tensors are
float noise: a 1 MiB diff is stored at 1.00 of its size anyway, after ~11 ms of CPU spent trying
(apps/node/benchmarks/replicas.py). EXTERNAL keeps them out of line, uncompressed. Only values
written from now on are affected; SQLite has no such setting.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 23:20:00
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

COLUMNS = (("report_diffs", "data"), ("checkpoints", "data"))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL')


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTENDED')
