"""Selection figures of open cycles (requests, rejections by reason), written with group commit.

A rejection is answered only once its count is on disk, so a `kill -9` loses none: the counts a
restarted Node shows are those of every answered request (a request cut off before its answer may
be counted too). Committing each one alone costs an fsync per cycle-request (SQLite
`synchronous=FULL`): 8 clients got 163 rejections/s that way. So concurrent requests share
commits: each one queues its cycle and waits; one greenlet writes every queued cycle's current
figures in one transaction, committed without waiting for the disk, then waits for the shared
flush (`Database.durable`, off the hub: the places and reports committed meanwhile ride along)
and wakes them all. Before it writes it lets the hub run what is ready (`_gather`), so that the
requests in hand join the same transaction. A lone request still pays one commit and one flush.
`apps/node/benchmarks/cycle_request_rate.py`: see docs/operations.md, Performance.
"""

from __future__ import annotations

import gevent
from gevent.event import AsyncResult
from sqlalchemy import update

from ..db.database import Database
from ..db.models import Cycle
from .open_cycle import OpenCycle


def save_figures(session, state: OpenCycle) -> None:
    """Write a cycle's current selection figures in `session`'s transaction."""
    session.execute(
        update(Cycle).where(Cycle.id == state.cycle_id)
        .values(requests=state.requests, rejected=dict(state.rejected))
    )


# The longest a commit of figures waits for more requests to join it.
GATHER_SECONDS = 0.002


class FigureWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queued: dict[int, OpenCycle] = {}  # cycle id -> its state, to write in the next commit
        self._next_commit = AsyncResult()
        self._writer: gevent.Greenlet | None = None

    def save(self, states: list[OpenCycle]) -> None:
        """Return once the figures of `states`, as they are now or later, are committed."""
        for state in states:
            self._queued[state.cycle_id] = state
        committed = self._next_commit
        if self._writer is None:
            self._writer = gevent.spawn(self._write_queued)
        committed.get()  # raises what the commit raised (the database is unreachable...)

    def _write_queued(self) -> None:
        try:
            while self._queued:
                self._gather()
                batch, self._queued = self._queued, {}
                committed, self._next_commit = self._next_commit, AsyncResult()
                try:
                    # Committed without waiting for the disk, then flushed with whatever else
                    # was committed meanwhile (places, reports): the flush runs off the hub.
                    with self.db.session(wait_for_disk=False) as session:
                        for state in batch.values():
                            save_figures(session, state)
                    self.db.durable()
                except Exception as exc:
                    committed.set_exception(exc)
                else:
                    committed.set(None)
        finally:
            self._writer = None

    @staticmethod
    def _gather() -> None:
        """Let the requests already in hand queue their figures before the write: wait until the
        hub has nothing else to run, but at most GATHER_SECONDS (under a steady stream it may
        never be idle). Without it one transaction carried about 6 of 16 waiting devices."""
        with gevent.Timeout(GATHER_SECONDS, False):
            gevent.idle()
