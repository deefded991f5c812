"""assignment leases and durable selection figures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cycles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requests', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('rejected', sa.JSON(), nullable=True))
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('cycles', schema=None) as batch_op:
        batch_op.drop_column('rejected')
        batch_op.drop_column('requests')
