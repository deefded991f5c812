"""Group commit of a single Node's new training places.

An accepted device must hear "accepted" only once its place is committed and on disk (a `kill -9`
or a power cut right after the answer keeps the assignment), and a cycle must never hand out more
places than `max_workers`. Committing each place alone, under the cycle's lock, did both but cost
a transaction per acceptance (an ORM insert, the cycle's figures, a commit), and on PostgreSQL it
held the lock across three round trips, so one cycle took one place at a time: ~1,060
acceptances/s on SQLite, ~530/s on PostgreSQL.

So the place is *taken* in memory under the cycle's lock (`OpenCycle.placing`, counted in
`places_taken`, so the next request's decision already sees it) and *written* by one greenlet for
every place queued meanwhile: it takes the cycle's lock, inserts the rows in one statement, writes
the cycle's figures once and commits without waiting for the disk (on PostgreSQL all of it is one
statement in its own transaction, a single round trip under the lock); then, outside the lock,
one shared flush (`Database.durable`) and every device of the batch is answered. The writer
holds the lock while it writes, so the rows and the cycle's memory change together as before: a
close or an expiry sees a place either before it is written (still in `placing`) or after (a row
and an `outstanding` lease), never half.

What can happen to a queued place before it is written:
- its cycle closed first (deadline, goal, stop, delete): nothing is written and its request is
  decided again on whatever is open now (`settled` returns None), as a request that waited for
  the lock while the cycle closed does;
- the commit failed (the database is unreachable): the places are given back in memory (a
  long-poll may take one) and each request raises what the commit raised;
- the same worker asks again (a retry after a lost connection): it waits for this write and is
  decided again, so it is handed back the same place (engine.py `_place`).

Replicas (``--cluster``) do not use this (another replica counts places in the database under the
cycle's row lock), nor do secure cycles (the last place fixes the cohort from `outstanding`),
evaluations and leases taken over by the same row: they are rare and keep the commit under the
lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent
from gevent.event import AsyncResult
from sqlalchemy import insert, select, update

from ..db.database import Database
from ..db.models import Assignment, Cycle
from .figures import gather_requests, save_figures
from .open_cycle import OpenCycle
from .statuses import AssignmentStatus, AssignmentTask

log = logging.getLogger("fedgrid.node.cycles")

_ASSIGNMENTS = Assignment.__table__
_CYCLES = Cycle.__table__
# SQLite: one statement for the whole batch (SQLAlchemy sends the rows as one multi-row INSERT;
# the ids come back with their request keys, whatever order the database returns them in).
_INSERT_PLACES = insert(_ASSIGNMENTS).returning(_ASSIGNMENTS.c.id, _ASSIGNMENTS.c.request_key)


@dataclass(eq=False)
class QueuedPlace:
    """A training place taken in memory, waiting to be written."""

    worker_id: str
    request_key: str
    assigned_at: datetime
    expires_at: datetime
    answer: dict[str, Any]
    outcome: AsyncResult = field(default_factory=AsyncResult)

    def settled(self) -> dict[str, Any] | None:
        """Wait until the place is committed and on disk and return its answer; None if its
        cycle closed before it was written (decide again); raise what its commit raised."""
        return self.outcome.get()

    def row(self, cycle_id: int) -> dict[str, Any]:
        return {"cycle_id": cycle_id, "worker_id": self.worker_id,
                "request_key": self.request_key, "status": AssignmentStatus.ACCEPTED.value,
                "task": AssignmentTask.TRAIN.value, "assigned_at": self.assigned_at,
                "expires_at": self.expires_at}


@dataclass(frozen=True)
class PlaceInFlight:
    """The worker's earlier request has a place queued in this cycle: wait for it, then decide
    again (the row is there by then)."""

    place: QueuedPlace

    def wait(self) -> None:
        self.place.outcome.wait()


class PlaceWriter:
    def __init__(self, db: Database, *,
                 placed: Callable[[OpenCycle, QueuedPlace, int], None],
                 given_back: Callable[[OpenCycle], None]) -> None:
        self.db = db
        self._placed = placed  # under the lock, after the commit: the place's row id
        self._given_back = given_back  # under the lock, after a failed commit
        self._queued: dict[int, tuple[OpenCycle, list[QueuedPlace]]] = {}
        self._writer: gevent.Greenlet | None = None

    def queue(self, state: OpenCycle, place: QueuedPlace) -> None:
        """Take the place in memory (called under the cycle's lock) and have it written."""
        state.placing[place.worker_id] = place
        self._queued.setdefault(state.cycle_id, (state, []))[1].append(place)
        if self._writer is None:
            self._writer = gevent.spawn(self._write_queued)

    def _write_queued(self) -> None:
        try:
            while self._queued:
                gather_requests()
                batch, self._queued = self._queued, {}
                written: list[QueuedPlace] = []
                for state, places in batch.values():
                    try:
                        written += self._write(state, places)
                    except Exception as exc:  # (a bug: its requests must not wait forever)
                        log.exception("could not write %d places of cycle %s", len(places),
                                      state.cycle_id)
                        for place in places:
                            if not place.outcome.ready():
                                state.placing.pop(place.worker_id, None)
                                place.outcome.set_exception(exc)
                if written:
                    # The flush runs beside the next batch's write (both share GroupFlush).
                    gevent.spawn(self._announce, written)
        finally:
            self._writer = None

    def _write(self, state: OpenCycle, places: list[QueuedPlace]) -> list[QueuedPlace]:
        """Write a cycle's queued places and its figures in one transaction, under its lock."""
        if self.db.is_sqlite:
            # SQLite's calls block the hub: nothing else runs while this holds the lock anyway.
            with state.lock:
                if state.closed:
                    return self._closed(state, places)
                try:
                    with self.db.session(wait_for_disk=False) as session:
                        connection = session.connection()
                        rows = connection.execute(
                            _INSERT_PLACES, [place.row(state.cycle_id) for place in places]
                        ).all()
                        save_figures(connection, state)
                except Exception as exc:
                    return self._failed(state, places, exc)
                return self._written(state, places, rows)
        # PostgreSQL: every round trip under the lock yields, and other requests queue on the lock
        # meanwhile, so the lock waits for one: the connection is taken (and pinged) first, and
        # the rows and the figures are one statement, its own transaction.
        failure: Exception | None = None
        with ExitStack() as connected:
            try:
                connection = connected.enter_context(self.db.connection(wait_for_disk=False,
                                                                     autocommit=True))
            except Exception as exc:
                failure = exc
            with state.lock:
                if state.closed:
                    return self._closed(state, places)
                if failure is None:
                    try:
                        rows = connection.execute(_places_with_figures(state, places)).all()
                    except Exception as exc:
                        failure = exc
                if failure is not None:
                    return self._failed(state, places, failure)
                return self._written(state, places, rows)

    @staticmethod
    def _closed(state: OpenCycle, places: list[QueuedPlace]) -> list[QueuedPlace]:
        for place in places:
            state.placing.pop(place.worker_id, None)
            place.outcome.set(None)
        return []

    def _failed(self, state: OpenCycle, places: list[QueuedPlace],
                failure: Exception) -> list[QueuedPlace]:
        for place in places:
            state.placing.pop(place.worker_id, None)
            place.outcome.set_exception(failure)
        self._given_back(state)
        return []

    def _written(self, state: OpenCycle, places: list[QueuedPlace],
                 rows: list[tuple[int, str]]) -> list[QueuedPlace]:
        """The rows are committed: each place takes its row id (rows are (id, request key))."""
        by_key = {key: row_id for row_id, key in rows}
        for place in places:
            state.placing.pop(place.worker_id, None)
            self._placed(state, place, by_key[place.request_key])
        return places

    def _announce(self, places: list[QueuedPlace]) -> None:
        try:
            self.db.durable()
        except Exception as exc:
            for place in places:
                place.outcome.set_exception(exc)
            return
        for place in places:
            place.outcome.set(place.answer)


def _places_with_figures(state: OpenCycle, places: list[QueuedPlace]):
    """PostgreSQL: the rows and the cycle's figures in one statement (data-modifying CTEs run
    once, referenced or not)."""
    placed = (insert(_ASSIGNMENTS).values([place.row(state.cycle_id) for place in places])
              .returning(_ASSIGNMENTS.c.id, _ASSIGNMENTS.c.request_key).cte("placed"))
    figures = (update(_CYCLES).where(_CYCLES.c.id == state.cycle_id)
               .values(requests=state.requests, rejected=dict(state.rejected))
               .returning(_CYCLES.c.id).cte("figures"))  # (figures.py `save_figures`'s)
    return select(placed.c.id, placed.c.request_key).add_cte(figures)
