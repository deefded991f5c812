"""Replicas on PostgreSQL: several Node processes serving the same models as one fleet.

With ``--cluster`` every replica answers every device request against the one shared database;
what a single Node keeps in memory is shared through PostgreSQL instead:

- **the open cycle's figures** (places taken, leases, reports, deadline, pause): each replica keeps
  a copy of the open cycle (`OpenCycle`), and every change to a cycle (a place, a report, an
  expiry, a close, a control) first takes the cycle's row lock (``SELECT … FOR UPDATE``) and
  re-reads the copy from the database (`CycleEngine._sync`). The row lock does across replicas
  what `OpenCycle.lock` does inside one: the goal, the selection counts and the deadline are
  decided by one replica at a time, on current figures.
- **time** (deadlines, lease expiries, closing at the goal): only the *leader* runs the cycles'
  watchers. Leadership is a PostgreSQL session-level advisory lock held on this module's own
  connection: when the leader dies (``kill -9``, a lost machine) its connection closes and the
  lock is free; another replica takes it within ``TAKEOVER_SECONDS`` and rebuilds every open
  cycle's running sum from the stored reports (`CycleEngine.become_leader`). TCP keepalives on
  that connection make the server notice a leader that vanished without closing its socket.
  Two leaders for a moment (a partition) cannot close a cycle twice: a close takes the row lock
  and finds the cycle closed.
- **the running sum**: reports are stored by whichever replica received them and the leader
  folds them in as they are announced (``LISTEN``/``NOTIFY``), so its close does not start from
  scratch. Whoever closes a cycle (the leader at a deadline or goal, any replica at a stop) first
  folds every stored report it has not folded yet, under the row lock, so no acknowledged report
  is missed and none is folded twice (`OpenCycle.folded`).
- **wake-ups**: a replica that frees or opens places (an expiry, a new cycle, a resume) announces
  it; every replica wakes its own held long-polls and WebSocket subscribers.

Notifications are an optimisation, never the truth: a lost one costs at most a watcher's poll
(`POLL_SECONDS`), because every decision re-reads the database under the row lock.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import gevent
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from .engine import CycleEngine

log = logging.getLogger("fedgrid.node.cluster")

CHANNEL = "fedgrid_engine"
# The advisory lock's key: any constant the deployment's database does not use for something else.
LEADER_LOCK_KEY = 0x46656447  # "FedG"
TAKEOVER_SECONDS = 1.0  # how often a follower tries to become the leader
POLL_SECONDS = 1.0  # the longest a leader's watcher sleeps without re-reading its cycle
RECONNECT_SECONDS = 1.0
# A leader whose machine vanished (no FIN, no RST) is noticed by the server after about
# idle + interval × count seconds, then its lock is free.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
             "keepalives_count": 3}


def connection_arguments(database_url: str) -> dict:
    """libpq keywords for the SQLAlchemy URL the Node was given (its driver part dropped)."""
    url = make_url(database_url)
    arguments = {"host": url.host, "port": url.port, "user": url.username,
                 "password": url.password, "dbname": url.database, **url.query}
    return {key: value for key, value in arguments.items() if value is not None}


class Cluster:
    """This replica's place among the others: leadership and notifications."""

    def __init__(self, engine: CycleEngine, database_url: str, replica_id: str) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self._arguments = connection_arguments(database_url)
        self.leading = False
        self._stopping = False
        self._runner: gevent.Greenlet | None = None
        self._connection: psycopg.Connection | None = None

    # ----------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        self._runner = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.kill(block=True, timeout=5)
        self._close_connection()  # the lock goes with the session: a follower takes over now
        self.leading = False

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._connection.close()
            self._connection = None

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._connection = psycopg.connect(autocommit=True, **self._arguments,
                                                   **KEEPALIVE)
                self._connection.execute(f"LISTEN {CHANNEL}")
                # The engine may have missed notifications while we were not listening.
                self.engine.wake_all()
                while not self._stopping:
                    if not self.leading:
                        self._try_to_lead()
                    else:
                        self.engine.reconcile()
                    for notification in self._connection.notifies(timeout=TAKEOVER_SECONDS):
                        self._dispatch(notification.payload)
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # the database is unreachable: not leading until it is back
                log.warning("replica %s lost its coordination connection (%s); reconnecting",
                            self.replica_id, exc)
            finally:
                if self.leading:
                    self.leading = False
                    self.engine.step_down()
                self._close_connection()
            if not self._stopping:
                gevent.sleep(RECONNECT_SECONDS)

    def _try_to_lead(self) -> None:
        acquired = self._connection.execute("SELECT pg_try_advisory_lock(%s)",
                                            (LEADER_LOCK_KEY,)).fetchone()[0]
        if acquired:
            log.info("replica %s leads: it runs the cycles' timers and closes", self.replica_id)
            self.leading = True
            self.engine.become_leader()

    def _dispatch(self, payload: str) -> None:
        kind, _, process = payload.partition(" ")
        try:
            process_id = int(process)
        except ValueError:
            return
        self.engine.announced(kind, process_id)

    # ----------------------------------------------------------------------------- announcing

    @staticmethod
    def announce(session, kind: str, process_id: int) -> None:
        """Tell every replica (this one included), when `session` commits."""
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": f"{kind} {process_id}"})
