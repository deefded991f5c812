"""node replicas: a Node's heartbeat, health and figures per process (replica)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:00:00

Each registered Node's own heartbeat columns become its one replica named "" (a Node run as one
process). The columns are dropped with ALTER TABLE ... DROP COLUMN, which SQLite has since 3.35
and which does not rebuild the table: a batch rebuild would drop `nodes`, and SQLite's foreign
keys would cascade that into hosted_processes.
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

MOVED = ('last_heartbeat', 'left_at', 'health', 'devices', 'load')


def upgrade() -> None:
    op.create_table('node_replicas',
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('replica', sa.String(length=128), nullable=False),
    sa.Column('last_heartbeat', sa.DateTime(), nullable=False),
    sa.Column('left_at', sa.DateTime(), nullable=True),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('devices', sa.Integer(), nullable=False),
    sa.Column('load', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('node_id', 'replica')
    )
    op.execute(
        "INSERT INTO node_replicas (node_id, replica, last_heartbeat, left_at, health, devices, load) "
        "SELECT id, '', last_heartbeat, left_at, health, devices, load FROM nodes"
    )
    for column in MOVED:
        op.execute(f"ALTER TABLE nodes DROP COLUMN {column}")


def downgrade() -> None:
    # SQLite adds a NOT NULL column only with a constant default; the UPDATE below sets it.
    op.add_column('nodes', sa.Column('last_heartbeat', sa.DateTime(), nullable=False,
                                     server_default='2000-01-01 00:00:00'))
    op.add_column('nodes', sa.Column('left_at', sa.DateTime(), nullable=True))
    op.add_column('nodes', sa.Column('health', sa.String(length=16), nullable=False,
                                     server_default='ok'))
    op.add_column('nodes', sa.Column('devices', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('nodes', sa.Column('load', sa.Float(), nullable=False, server_default='0'))
    # The most recent replica's heartbeat stands for the whole Node again.
    op.execute(
        "UPDATE nodes SET "
        + ", ".join(
            f"{column} = COALESCE((SELECT r.{column} FROM node_replicas r WHERE r.node_id = nodes.id "
            f"ORDER BY r.last_heartbeat DESC LIMIT 1), nodes.{column})"
            for column in MOVED
        )
    )
    op.execute("UPDATE nodes SET last_heartbeat = joined_at WHERE NOT EXISTS "
               "(SELECT 1 FROM node_replicas r WHERE r.node_id = nodes.id)")
    op.drop_table('node_replicas')
