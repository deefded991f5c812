"""network membership tokens shared by the replicas of a --cluster Node

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 23:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'network_membership_tokens',
        sa.Column('network_url', sa.String(length=512), nullable=False),
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('node_token', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('network_url', 'node_id'),
    )


def downgrade() -> None:
    op.drop_table('network_membership_tokens')
