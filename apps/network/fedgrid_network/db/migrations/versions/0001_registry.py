"""node registry

Revision ID: 0001
Revises:
Create Date: 2026-11-21 19:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nodes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=512), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('software_version', sa.String(length=32), nullable=True),
    sa.Column('joined_at', sa.DateTime(), nullable=False),
    sa.Column('last_heartbeat', sa.DateTime(), nullable=False),
    sa.Column('left_at', sa.DateTime(), nullable=True),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('devices', sa.Integer(), nullable=False),
    sa.Column('load', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('hosted_processes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=True),
    sa.Column('checkpoint', sa.Integer(), nullable=True),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('reported', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('node_id', 'name', 'version', name='uq_hosted_node_name_version')
    )
    op.create_index('ix_hosted_processes_node_id', 'hosted_processes', ['node_id'], unique=False)
    op.create_index('ix_hosted_processes_name', 'hosted_processes', ['name'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_hosted_processes_name', table_name='hosted_processes')
    op.drop_index('ix_hosted_processes_node_id', table_name='hosted_processes')
    op.drop_table('hosted_processes')
    op.drop_table('nodes')
