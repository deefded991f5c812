"""Engine, sessions and schema upgrades (Alembic) for SQLite (embedded default) and PostgreSQL.

Each app subclasses `Database` with its own migrations directory (its env.py and versions/) and,
where its load differs, its own pool settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import gevent
import gevent.event
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from fedgrid_protocol.errors import ApiError

log = logging.getLogger("fedgrid.server.database")


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite's default 4 KiB pages. (64 KiB pages stored 1 MiB report diffs ~30 % faster, but
    # diffs now live in files, and a WAL commit writes whole pages: a small update cost 0.12 ms
    # and 64 KiB of WAL with them against 0.015 ms and 4 KiB. A file made with them keeps them.)
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit survive power loss,
    # so an acknowledged write is on disk before the client hears "success".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _relax_sqlite(dbapi_connection, _record) -> None:
    _configure_sqlite(dbapi_connection, _record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")  # commits reach the WAL file, not yet the disk
    cursor.close()


def _relax_postgresql(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO off")  # commits return before the WAL is flushed
    cursor.close()
    dbapi_connection.commit()  # (a SET inside a transaction rolled back would be undone)


def _sync_file(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # checkpointed and removed: its frames are in the (synced) database file
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _sync_failure(path: str) -> OSError | None:
    """`_sync_file` on a pool thread, its failure returned (raised there, gevent would print it
    as an unhandled traceback)."""
    try:
        _sync_file(path)
    except OSError as failure:
        return failure
    return None


def storage_failed(failure: OSError) -> ApiError:
    """The answer to every write once the disk has failed a flush (`Database.storage_failure`)."""
    return ApiError("storage_unavailable",
                    f"this server's disk failed to flush ({failure.strerror or failure}): it "
                    "takes no more writes until it is restarted; send again later", 503)


class GroupFlush:
    """Group commit: callers that each need "what I wrote is on disk" share flushes. A flush
    covers what was written before it began. A caller names when its write was done with
    `mark()`, taken after it: it then waits only for a flush begun after that point, one already
    running or one another caller starts. Without a mark the call itself is the point, so a
    caller arriving while a flush runs waits for it and then for the next."""

    def __init__(self, flush) -> None:
        self._flush = flush
        self._begun = 0  # flushes begun so far, numbered from 1
        self._ended = 0  # the number of the last flush that ended without failing
        self._running: gevent.event.Event | None = None

    def mark(self) -> int:
        """The point a finished write is at: a flush numbered above it began after the write."""
        return self._begun

    def wait(self, since: int | None = None) -> None:
        """Return once a flush begun after `since` (a `mark()`; default: now) has ended."""
        if since is None:
            since = self._begun
        while self._ended <= since:
            if self._running is not None:
                self._running.wait()
                continue
            running = self._running = gevent.event.Event()
            self._begun += 1
            number = self._begun
            try:
                self._flush()
                self._ended = number
            finally:
                self._running = None
                running.set()


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
            self._relaxed_engine = create_engine(
                url, connect_args={"check_same_thread": False},
                **({"pool_size": 2, "max_overflow": 8} if self.sqlite_pooled
                   else {"poolclass": NullPool}))
            event.listen(self._relaxed_engine, "connect", _relax_sqlite)
            for engine in (self.engine, self._relaxed_engine):
                event.listen(engine, "commit", self._refuse_writes_after_failure)
        else:
            self.engine = create_engine(url, pool_size=self.pool_size,
                                        max_overflow=self.max_overflow, pool_pre_ping=True)
            self._relaxed_engine = create_engine(url, pool_size=2, max_overflow=8,
                                                 pool_pre_ping=True)
            event.listen(self._relaxed_engine, "connect", _relax_postgresql)
        # Connections whose commits do not wait for the disk (`session(wait_for_disk=False)`): a
        # pool of their own, set once per connection, so no statement per use switches a shared
        # connection back and forth. Created lazily by SQLAlchemy: an app that never asks for one
        # opens none.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._relaxed_sessions = sessionmaker(self._relaxed_engine, expire_on_commit=False)
        self._group_flush = GroupFlush(self._flush_to_disk)
        # SQLite: set when the disk failed to flush the WAL. Linux may drop the pages it could
        # not write and report the next flush a success, and SQLite's recovery stops at the
        # first frame it cannot read, so a commit acknowledged after it could be lost in a
        # crash: from then on no write commits and `durable` refuses, until a restart recovers
        # what reached the disk (PostgreSQL stops itself in that case).
        self.storage_failure: OSError | None = None

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (run at every start)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(self.migrations_dir))
        config.attributes["engine"] = self.engine
        command.upgrade(config, "head")

    @contextmanager
    def session(self, *, wait_for_disk: bool = True) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any exception.

        ``wait_for_disk=False``: the commit returns before the disk has it (visible to everyone
        at once, lost by a power cut or an OS crash until `durable` returns). Whoever tells a
        client it happened calls `durable` first. The point is group commit: a lock held across
        the commit is no longer held across a flush to disk, and concurrent callers of `durable`
        share one flush (see `_flush_to_disk`)."""
        session = self._sessions() if wait_for_disk else self._relaxed_sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def connection(self, *, wait_for_disk: bool = True,
                   autocommit: bool = False) -> Iterator[Connection]:
        """`session` without the ORM, for hot paths that only run Core statements (the Session's
        own bookkeeping was about a third of a report batch's database time), checked out (and,
        on PostgreSQL, pinged) now. Commits on success, rolls back on any exception; `rollback`
        inside starts over. ``wait_for_disk=False`` as for `session`.

        ``autocommit``: every statement is its own transaction. For a write that is one
        statement: no BEGIN and no COMMIT of its own, so on PostgreSQL it costs one round trip
        instead of three; a caller that must not yield while it holds a lock takes the
        connection before the lock. The connection goes back to the pool transactional."""
        engine = self.engine if wait_for_disk else self._relaxed_engine
        with engine.connect() as connection:
            if autocommit:
                yield connection.execution_options(isolation_level="AUTOCOMMIT")
                return
            try:
                yield connection
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def durable(self, since: int | None = None) -> None:
        """Return once every transaction this process committed so far (or, given a
        `flush_mark()`, before that mark) is on disk; raise `storage_unavailable` once the disk
        has failed a flush (`_flush_to_disk`)."""
        self._group_flush.wait(since)

    def flush_mark(self) -> int:
        """Taken right after a commit: `durable(since=mark)` then waits for a flush begun after
        the commit, one already running included, not necessarily one begun after its own call
        (see `GroupFlush`)."""
        return self._group_flush.mark()

    def _refuse_writes_after_failure(self, connection: Connection) -> None:
        """SQLite, before each commit: after a failed flush (`storage_failure`), a transaction
        that wrote is refused, and rolled back by whoever committed it; reads go on."""
        if self.storage_failure is not None and connection.connection.dbapi_connection.in_transaction:
            raise storage_failed(self.storage_failure)

    def _flush_to_disk(self) -> None:
        """Make every commit so far durable, without blocking the hub.

        SQLite (WAL): synchronous=NORMAL commits are in the WAL file but not yet synced, and
        fdatasync of that file is exactly the sync synchronous=FULL would have done at each
        commit. (A checkpoint in between syncs the WAL before copying it, and the database file
        after; a WAL deleted after one needs no sync.) It runs on the thread pool.
        PostgreSQL: a commit that wrote WAL and waits for it (synchronous_commit on) flushes the
        WAL up to its own record, which covers every asynchronous commit before it; a
        transactional logical message is the smallest WAL-writing transaction (no table, no
        privilege needed). psycopg waits cooperatively, so the hub stays free."""
        if self.storage_failure is not None:  # never tried again (and its waiters fail too)
            raise storage_failed(self.storage_failure)
        if self.is_sqlite:
            database = self.engine.url.database
            if database and database != ":memory:":
                failure = gevent.get_hub().threadpool.apply(_sync_failure, (f"{database}-wal",))
                if failure is not None:
                    if self.storage_failure is None:
                        log.critical("the disk failed to flush the database's write-ahead log "
                                     "(%s): no more writes are taken; restart this process "
                                     "once the disk is sound", failure)
                    self.storage_failure = failure
                    raise storage_failed(failure)
            return
        with self.connection(autocommit=True) as connection:  # one round trip
            connection.execute(text("SELECT pg_logical_emit_message(true, 'fedgrid', '')"))

    def dispose(self) -> None:
        self.engine.dispose()
        self._relaxed_engine.dispose()
