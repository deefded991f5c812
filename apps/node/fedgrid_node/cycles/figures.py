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
from sqlalchemy import bindparam, update

from ..db.database import Database
from ..db.models import Cycle
from .open_cycle import OpenCycle

_CYCLES = Cycle.__table__
# Built once: the ORM statement built anew per write cost the place writer a fifth of its time.
_SAVE_FIGURES = (update(_CYCLES).where(_CYCLES.c.id == bindparam("cycle_id"))
                 .values(requests=bindparam("figure_requests"),
                         rejected=bindparam("figure_rejected", type_=_CYCLES.c.rejected.type)))


def save_figures(connection, state: OpenCycle) -> None:
    """Write a cycle's current selection figures in the transaction of `connection` (a Core
    connection or an ORM session)."""
    connection.execute(_SAVE_FIGURES, {"cycle_id": state.cycle_id,
                                       "figure_requests": state.requests,
                                       "figure_rejected": dict(state.rejected)})


# The longest a group commit waits for more requests to join it.
GATHER_SECONDS = 0.002


def gather_requests() -> None:
    """Before a group commit: let the requests already in hand queue their work first, waiting
    until the hub has nothing else to run, but at most GATHER_SECONDS (under a steady stream it
    may never be idle). Without it one transaction of figures carried about 6 of 16 waiting
    devices."""
    with gevent.Timeout(GATHER_SECONDS, False):
        gevent.idle()


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
                gather_requests()
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
