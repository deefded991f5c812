"""The Alembic environment both apps run: each app's `db/migrations/env.py` calls
`run_migrations(Base.metadata)` with its own models; its revisions stay in its own versions/.

`Database.upgrade()` passes its engine in ``config.attributes["engine"]``; the `alembic` command
run by hand takes the URL from ``alembic -x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine, text

# The PostgreSQL advisory lock key that serialises schema upgrades (any constant of our own).
MIGRATION_LOCK = 0x66656467726964  # "fedgrid"


def run_migrations(target_metadata: MetaData) -> None:
    config = context.config
    engine = config.attributes.get("engine")
    if engine is None:
        # Only when running the `alembic` command by hand: URL from alembic -x url=...
        engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas of a Node (--cluster) start at once against one database: one at a time
                # reads the schema's revision and upgrades it, the others then find it current.
                # The lock ends with the transaction.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK})
            context.run_migrations()
        connection.commit()
