"""index updated_at of customers and orders

The cached match index asks for the customers and orders changed since
its last sync on every match request; without an index that is a scan
of every order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:00:00.000000
"""

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_updated_at'), ['updated_at'], unique=False)
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_order_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_order_updated_at'))
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_updated_at'))
