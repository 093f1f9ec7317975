"""Alembic environment: runs on the connection Cashmatch hands over."""

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import models.tables  # noqa: F401  registers the tables on the metadata

target_metadata = SQLModel.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as new_connection:
        run_migrations(new_connection)
