"""The shared Database and Alembic environment, with a throw-away app's models and migration."""

from __future__ import annotations

import os
from pathlib import Path

import gevent
import gevent.event
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.pool import NullPool

from fedgrid_server.config import ServiceConfig, normalize_database_url
from fedgrid_server.database import Database, GroupFlush
from tests.support.databases import database_backends, make_database_url

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(40), nullable=False))

# An app's env.py: its own models' metadata, the shared environment.
ENV_PY = """
from sqlalchemy import MetaData

from fedgrid_server.migrations import run_migrations

run_migrations(MetaData())
"""
REVISION = '''
"""things"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("things", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(40), nullable=False))
'''


def migrations(tmp_path: Path) -> Path:
    """An app's migrations directory: its env.py calls the shared run_migrations."""
    directory = tmp_path / "migrations"
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(ENV_PY)
    (directory / "versions" / "0001_things.py").write_text(REVISION)
    return directory


@pytest.mark.parametrize("backend", database_backends())
def test_upgrade_runs_the_apps_migrations_and_sessions_commit_or_roll_back(backend, tmp_path):
    class AppDatabase(Database):
        migrations_dir = migrations(tmp_path)

    test_db = make_database_url(backend, tmp_path)
    config = ServiceConfig(database_url=test_db.url, data_dir=tmp_path / "data")
    db = AppDatabase(config.resolved_database_url())
    try:
        db.upgrade()
        db.upgrade()  # a second start finds nothing to do
        with db.session() as session:
            session.execute(things.insert().values(name="kept"))
        with pytest.raises(RuntimeError), db.session() as session:
            session.execute(things.insert().values(name="rolled back"))
            raise RuntimeError("boom")
        with db.session() as session:
            assert session.scalars(select(things.c.name)).all() == ["kept"]
            version = session.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == "0001"
    finally:
        db.dispose()
        test_db.drop()


def test_sqlite_pragmas_and_pools(tmp_path):
    class Pooled(Database):
        migrations_dir = tmp_path

    class Unpooled(Pooled):
        sqlite_pooled = False

    for cls in (Pooled, Unpooled):
        db = cls(f"sqlite:///{tmp_path / (cls.__name__ + '.db')}")
        try:
            assert db.is_sqlite
            assert isinstance(db.engine.pool, NullPool) is (cls is Unpooled)
            with db.session() as session:
                pragmas = [session.scalar(text(f"PRAGMA {name}")) for name in
                           ("journal_mode", "synchronous", "foreign_keys", "busy_timeout",
                            "page_size")]
            assert pragmas == ["wal", 2, 1, 30000, 4096]
        finally:
            db.dispose()


def test_database_urls(tmp_path):
    assert normalize_database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_database_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    # A driver named in the URL is kept: pg8000 stays available.
    assert normalize_database_url("postgresql+pg8000://h/db") == "postgresql+pg8000://h/db"

    class AppConfig(ServiceConfig):
        database_file = "app.db"

    config = AppConfig(data_dir=tmp_path / "data")
    assert config.resolved_database_url() == f"sqlite:///{(tmp_path / 'data' / 'app.db').resolve()}"
    assert (tmp_path / "data").is_dir()
    assert AppConfig(database_url="postgres://h/db").resolved_database_url() == (
        "postgresql+psycopg://h/db")
    assert len(ServiceConfig().secret_key) == 64 and ServiceConfig().secret_key != config.secret_key



# One replica's start, up to its schema upgrade: ready once imported and connected, it upgrades
# when the test says go, so that all of them reach the upgrade together.
UPGRADE_AT_GO = """
import sys, time
from pathlib import Path
from fedgrid_node.db.database import Database
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
db = Database(url)
db.engine.connect().close()
ready.touch()
while not go.exists():
    time.sleep(0.005)
db.upgrade()
"""


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_replicas_starting_at_once_upgrade_one_postgresql_schema_one_at_a_time(backend, tmp_path):
    """Replicas of a Node (--cluster) start together on one empty database: without the
    upgrade's lock, two of them created the same tables and one died of a duplicate key."""
    import subprocess
    import sys
    import time

    test_db = make_database_url(backend, tmp_path)
    url = normalize_database_url(test_db.url)
    go = tmp_path / "go"
    try:
        starts = [subprocess.Popen([sys.executable, "-c", UPGRADE_AT_GO, url,
                                    str(tmp_path / f"ready-{i}"), str(go)],
                                   stderr=subprocess.PIPE, text=True) for i in range(4)]
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{i}").exists() for i in range(4)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in starts)
            time.sleep(0.01)
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in starts]
        assert [p.returncode for p in starts] == [0, 0, 0, 0], "\n".join(errors)
        db = Database(url)
        try:
            with db.session() as session:
                versions = session.scalars(text("SELECT version_num FROM alembic_version")).all()
        finally:
            db.dispose()
        assert len(versions) == 1
    finally:
        test_db.drop()


def one_connection_database(backend: str, tmp_path):
    """A Database whose pool holds one connection (the next session gets the same one), on a
    throw-away database; and that database, to drop."""
    class OneConnection(Database):
        migrations_dir = migrations(tmp_path)
        pool_size, max_overflow = 1, 0

    test_db = make_database_url(backend, tmp_path)
    config = ServiceConfig(database_url=test_db.url, data_dir=tmp_path / "data")
    return OneConnection(config.resolved_database_url()), test_db


@pytest.mark.parametrize("backend", database_backends())
@pytest.mark.parametrize("wait_for_disk", [True, False])
def test_a_core_connection_commits_on_success_and_rolls_back_on_failure(backend, tmp_path,
                                                                         wait_for_disk):
    """`connection()` (Core, no ORM session): what it ran is committed when the block ends; a
    failure rolls back all of it; a `rollback` inside starts over on the same connection."""
    db, test_db = one_connection_database(backend, tmp_path)
    try:
        db.upgrade()
        with db.connection(wait_for_disk=wait_for_disk) as connection:
            connection.execute(things.insert().values(name="undone"))
            connection.rollback()
            connection.execute(things.insert().values(name="kept"))
        with pytest.raises(RuntimeError), db.connection(wait_for_disk=wait_for_disk) as connection:
            connection.execute(things.insert().values(name="failed"))
            raise RuntimeError("rolled back")
        with db.session() as session:
            assert session.scalars(select(things.c.name)).all() == ["kept"]
    finally:
        db.dispose()
        test_db.drop()


@pytest.mark.parametrize("backend", database_backends())
def test_a_relaxed_commit_is_visible_at_once_and_durable_after_the_shared_flush(
        backend, tmp_path, monkeypatch):
    """`session(wait_for_disk=False)` commits without flushing (and never leaves that setting
    on a pooled connection); `durable()` flushes: SQLite's WAL file, PostgreSQL's WAL."""
    db, test_db = one_connection_database(backend, tmp_path)
    setting = "PRAGMA synchronous" if db.is_sqlite else "SHOW synchronous_commit"
    synced = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync",
                        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                    real_fdatasync(fd)))
    try:
        db.upgrade()
        with db.session(wait_for_disk=False) as session:
            assert session.scalar(text(setting)) in (1, "off")
            session.execute(things.insert().values(name="relaxed"))
        if not db.is_sqlite:
            with db.session() as session:
                written = session.scalar(text("SELECT pg_current_wal_insert_lsn()"))
        with db.session() as session:  # visible at once, and the default is back
            assert session.scalars(select(things.c.name)).all() == ["relaxed"]
            assert session.scalar(text(setting)) in (2, "on")
        with pytest.raises(RuntimeError), db.session(wait_for_disk=False) as session:
            raise RuntimeError("rolled back")
        with db.session() as session:
            assert session.scalar(text(setting)) in (2, "on")

        db.durable()
        if db.is_sqlite:
            assert synced == [f"{tmp_path / 'data' / ServiceConfig.database_file}-wal"]
        else:
            with db.session() as session:
                flushed = session.scalar(text(
                    f"SELECT pg_current_wal_flush_lsn() >= '{written}'::pg_lsn"))
            assert flushed
    finally:
        db.dispose()
        test_db.drop()


@pytest.mark.parametrize("backend", database_backends())
@pytest.mark.parametrize("wait_for_disk", [True, False])
def test_an_autocommit_connection_commits_each_statement_and_leaves_the_pool_transactional(
        backend, tmp_path, wait_for_disk):
    """`connection(autocommit=True)` runs each statement as its own transaction (one round trip on
    PostgreSQL); the connection goes back to the pool transactional, as sessions expect."""
    db, test_db = one_connection_database(backend, tmp_path)
    other = type(db)(db.url)
    try:
        db.upgrade()
        with db.connection(wait_for_disk=wait_for_disk, autocommit=True) as connection:
            connection.execute(things.insert().values(name="at once"))
            with other.session() as session:  # another connection sees it: committed already
                assert session.scalars(select(things.c.name)).all() == ["at once"]
        session_of = db.session if wait_for_disk else lambda: db.session(wait_for_disk=False)
        with pytest.raises(RuntimeError), session_of() as session:
            session.execute(things.insert().values(name="rolled back"))
            raise RuntimeError("rolled back")
        with db.session() as session:
            assert session.scalars(select(things.c.name)).all() == ["at once"]
    finally:
        db.dispose()
        other.dispose()
        test_db.drop()


def test_callers_waiting_together_share_flushes():
    """A flush covers the commits made before it started: callers arriving during one wait for
    it, then share the next one."""
    gate = gevent.event.Event()
    flushes = []

    def flush():
        flushes.append(len(flushes))
        gate.wait()

    group = GroupFlush(flush)
    first = gevent.spawn(group.wait)
    gevent.wait([gevent.spawn(lambda: None)])  # let `first` start its flush
    assert flushes == [0]
    later = [gevent.spawn(group.wait) for _ in range(4)]
    gevent.idle()
    assert flushes == [0] and not any(greenlet.ready() for greenlet in [first, *later])
    gate.set()  # the first flush ends: it covers `first` only; one more covers the other four
    gevent.joinall([first, *later], raise_error=True)
    assert flushes == [0, 1]
    group.wait()  # alone: a flush of its own
    assert flushes == [0, 1, 2]


def test_callers_that_waited_for_a_failed_flush_fail_too_and_no_write_commits_after(
        tmp_path, monkeypatch):
    """SQLite: the WAL's flush fails (EIO) while callers wait for it. Each of them is refused
    `storage_unavailable`, and so is every later `durable` and every commit that wrote, although
    the disk works again: Linux may have dropped what the failed flush could not write and report
    the next flush a success. Reads go on."""
    import errno
    import threading

    from fedgrid_protocol.errors import ApiError
    from fedgrid_server import database as database_module

    db, test_db = one_connection_database("sqlite", tmp_path)
    release = threading.Event()  # (the flush runs on a pool thread)
    calls = []

    def failing(path):
        calls.append(path)
        if len(calls) == 1:
            release.wait(30)
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    try:
        db.upgrade()
        monkeypatch.setattr(database_module, "_sync_file", failing)
        with db.session(wait_for_disk=False) as session:
            session.execute(things.insert().values(name="before"))
        first = gevent.spawn(db.durable)
        while not calls:
            gevent.sleep(0.001)  # the first flush is running (on a pool thread)
        waiting = [gevent.spawn(db.durable) for _ in range(3)]
        gevent.idle()
        release.set()
        gevent.joinall([first, *waiting])
        for greenlet in [first, *waiting]:
            assert isinstance(greenlet.exception, ApiError), greenlet.exception
            assert greenlet.exception.code == "storage_unavailable"
        assert len(calls) == 1  # never tried again
        with pytest.raises(ApiError, match="takes no more writes"):
            db.durable()
        with pytest.raises(ApiError, match="takes no more writes"), db.session() as session:
            session.execute(things.insert().values(name="after"))
        with db.session() as session:
            assert session.scalars(select(things.c.name)).all() == ["before"]
    finally:
        db.dispose()
        test_db.drop()


def test_a_caller_that_marked_its_write_shares_a_flush_begun_after_the_mark():
    """A flush covers what was written before it began. A caller that marked its finished write
    (`mark()`) and asks while a flush begun after the mark runs waits for that one only; a caller
    whose mark came during that flush needs the next one. A mark a finished flush covers needs
    none."""
    gates = [gevent.event.Event(), gevent.event.Event()]
    flushes = []

    def flush():
        flushes.append(len(flushes))
        gates[flushes[-1]].wait()

    group = GroupFlush(flush)
    before = group.mark()  # written before any flush began
    first = gevent.spawn(group.wait)
    gevent.wait([gevent.spawn(lambda: None)])  # let `first` begin flush 0
    assert flushes == [0]
    during = group.mark()  # written while flush 0 runs: not covered by it
    marked_before = gevent.spawn(group.wait, before)
    marked_during = gevent.spawn(group.wait, during)
    gevent.idle()
    gates[0].set()
    gevent.joinall([first, marked_before], raise_error=True)
    gevent.idle()
    assert flushes == [0, 1]  # flush 1 began for `marked_during`, and holds
    assert not marked_during.ready()
    gates[1].set()
    marked_during.get(timeout=5)
    group.wait(during)  # covered by the finished flush 1: no flush of its own
    assert flushes == [0, 1]
