"""prepayment controls: booking dates, approval requests and closed months

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models.money


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invoice_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('booked_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_entry_booked_on'), ['booked_on'], unique=False)
    _backfill_booked_on()

    op.create_table('closed_month',
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.PrimaryKeyConstraint('month')
    )
    op.create_table('ledger_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('amount', models.money.Money(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_line_id', sa.Integer(), nullable=True),
    sa.Column('payment_line_id', sa.Integer(), nullable=True),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('booked_on', sa.Date(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['ledger_entry.id'], ),
    sa.ForeignKeyConstraint(['payment_line_id'], ['statement_line.id'], ),
    sa.ForeignKeyConstraint(['source_line_id'], ['statement_line.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_request_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_request_payment_line_id'), ['payment_line_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_ledger_request_source_line_id'), ['source_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_request_status'), ['status'], unique=False)


def _backfill_booked_on() -> None:
    # Entries written before this revision count for the day they were
    # written (UTC), which is what the ledger showed for them until now.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text('SELECT id, created_at FROM ledger_entry WHERE booked_on IS NULL')
    ).all()
    for entry_id, created_at in rows:
        day = created_at.date() if hasattr(created_at, 'date') else str(created_at)[:10]
        connection.execute(
            sa.text('UPDATE ledger_entry SET booked_on = :day WHERE id = :id'),
            {'day': day, 'id': entry_id},
        )


def downgrade() -> None:
    with op.batch_alter_table('ledger_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_request_status'))
        batch_op.drop_index(batch_op.f('ix_ledger_request_source_line_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_request_payment_line_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_request_customer_id'))

    op.drop_table('ledger_request')
    op.drop_table('closed_month')
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entry_booked_on'))
        batch_op.drop_column('booked_on')
        batch_op.drop_column('invoice_id')
