"""store the date of an import batch's closing balance

The monthly reconciliation ends a statement on the date its closing
balance is for. Batches imported before this revision keep NULL, and
the reconciliation ends them on their last line's day as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:20:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closing_date', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.drop_column('closing_date')
