"""where a single Node keeps a report's diff: its cycle's file, located on the assignment

A single Node appends each diff to a per-cycle file, flushed to disk before the transaction that
marks the assignment reported; that transaction also records the diff's offset, length and
CRC-32 (fedgrid_node/cycles/diff_files.py). Replicas keep theirs in `report_diffs`, whose rows
from before this revision are read as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 02:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COLUMNS = ("diff_offset", "diff_length", "diff_checksum")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("assignments", sa.Column(column, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
