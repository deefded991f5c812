"""Engine, sessions and schema upgrades (Alembic) for SQLite (embedded default) and PostgreSQL.

Each app subclasses `Database` with its own migrations directory (its env.py and versions/) and,
where its load differs, its own pool settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # 64 KiB pages for a new file (an existing one keeps its own): a 1 MiB report diff then
    # spans 16 overflow pages instead of 256, which SQLite stores about 30 % faster.
    cursor.execute("PRAGMA page_size=65536")
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit survive power loss,
    # so an acknowledged write is on disk before the client hears "success".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """Owns the engine and hands out transactional sessions."""

    # The app's Alembic directory (env.py, script.py.mako, versions/); set by each subclass.
    migrations_dir: ClassVar[Path]
    # Connections kept open per engine (SQLite only when sqlite_pooled; PostgreSQL always).
    pool_size: ClassVar[int] = 10
    max_overflow: ClassVar[int] = 20
    # Pooled SQLite runs the PRAGMAs once per connection instead of on every use; unpooled
    # (NullPool) opens a connection per use.
    sqlite_pooled: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # A connection is only ever used by the greenlet that checked it out, on the hub's
            # thread (database work stays out of gevent's thread pool), so check_same_thread can
            # be off.
            pool = ({"pool_size": self.pool_size, "max_overflow": self.max_overflow}
                    if self.sqlite_pooled else {"poolclass": NullPool})
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False}, **pool
            )
            event.listen(self.engine, "connect", _configure_sqlite)
        else:
            self.engine = create_engine(url, pool_size=self.pool_size,
                                        max_overflow=self.max_overflow, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (run at every start)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(self.migrations_dir))
        config.attributes["engine"] = self.engine
        command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
