"""The Alembic environment both apps run: each app's `db/migrations/env.py` calls
`run_migrations(Base.metadata)` with its own models; its revisions stay in its own versions/.

`Database.upgrade()` passes its engine in ``config.attributes["engine"]``; the `alembic` command
run by hand takes the URL from ``alembic -x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine


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
            context.run_migrations()
        connection.commit()
