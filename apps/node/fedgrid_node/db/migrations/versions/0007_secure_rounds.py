"""durable secure aggregation rounds: the rounds' state and every acknowledged message

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 01:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'secure_rounds',
        sa.Column('cycle_id', sa.Integer(), nullable=False),
        sa.Column('cohort', sa.JSON(), nullable=False),
        sa.Column('graph_seed', sa.BigInteger(), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('round_closes', sa.DateTime(), nullable=False),
        sa.Column('failure', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['cycle_id'], ['cycles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('cycle_id'),
    )
    op.create_table(
        'secure_messages',
        sa.Column('cycle_id', sa.Integer(), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('device', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['cycle_id'], ['cycles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('cycle_id', 'round', 'device'),
    )
    if op.get_context().dialect.name == "postgresql":
        # Masked inputs are uniform noise: compressing them would only cost CPU (see 0005).
        op.execute('ALTER TABLE secure_messages ALTER COLUMN data SET STORAGE EXTERNAL')


def downgrade() -> None:
    op.drop_table('secure_messages')
    op.drop_table('secure_rounds')
