"""held-out evaluation sets and scores, evaluation assignments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'evaluation_sets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('process_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('num_samples', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['process_id'], ['processes.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('process_id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test_metrics', sa.JSON(), nullable=True))
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task', sa.String(length=16), server_default='train',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('task')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_column('test_metrics')
    op.drop_table('evaluation_sets')
