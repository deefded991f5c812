"""Group commit of a single Node's reports: the reports of one open cycle that arrive together
are decided, marked reported and folded as one batch.

Each report's diff is checked and written to its cycle's file (diff_files.py) on the thread pool
first, by its own request. What is left needs the cycle's lock: the decision (open, on time,
within the goal), the row that makes the report count, and the fold into the running sum in the
order of acknowledgement. Taken one report at a time, that critical section (a transaction on the
hub and a hand-off to the fold threads) was what the reports queued behind: at 16 concurrent
devices the Node used well under a core while its reports waited on the lock
(apps/node/benchmarks/report_ingest.py). One batch takes the lock once, marks its reports in one
transaction and folds them in one hand-off, so the same critical section serves every report that
came in while the previous batch was being stored.

A report is answered only after its batch's transaction committed and once the commit is on
disk. On SQLite the batch commits without waiting for the disk and marks the point of its commit
(`Database.flush_mark`): its reports then share one flush begun after that point, shared with
places and other batches as well (`Database.durable`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import numpy as np

from .diff_files import DiffLocation


@dataclass
class PendingReport:
    """A training report whose diff is checked (and on disk, when the Node keeps diff files),
    waiting for its batch. `outcome` gets the answer, or the refusal to raise."""

    assignment_id: int
    num_samples: int
    metrics: Mapping[str, float] | None
    diff: Mapping[str, np.ndarray]
    location: DiffLocation | None  # None: the diff goes into report_diffs with the row
    diff_bytes: Any = None  # (only when `location` is None)
    outcome: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    # SQLite: `Database.flush_mark()` right after the batch's commit, for the report's answer to
    # wait for a flush begun after it (one for the whole batch); None where the commit itself
    # waited for the disk (PostgreSQL).
    committed: int | None = None


class ReportBatches:
    """The reports of one open cycle waiting to be stored. One greenlet stores them, a batch at a
    time: all that waited while the previous batch was stored."""

    def __init__(self, store: Callable[[list[PendingReport]], None]) -> None:
        # `store` decides every report of a batch: it sets each one's outcome.
        self._store = store
        self._waiting: list[PendingReport] = []
        self._storer: gevent.Greenlet | None = None

    def submit(self, report: PendingReport) -> dict[str, Any]:
        """Queue a report and wait for its batch: its answer, or its refusal raised."""
        self._waiting.append(report)
        if self._storer is None:
            # A greenlet of its own, not the first request's: a request whose client went away
            # must not take the others' batch with it.
            self._storer = gevent.spawn(self._store_all)
        return report.outcome.get()

    def _store_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    self._store(batch)
                except BaseException as failure:
                    # Whatever the failure (the database gone, the storer killed at shutdown),
                    # every report still waiting hears it: none waits for ever.
                    for report in batch:
                        if not report.outcome.ready():
                            report.outcome.set_exception(failure)
                    if not isinstance(failure, Exception):
                        for report in self._waiting:
                            report.outcome.set_exception(failure)
                        self._waiting = []
                        raise
                for report in batch:
                    if not report.outcome.ready():  # a bug in `store`: say so, never hang
                        report.outcome.set_exception(
                            RuntimeError("a report of the batch was left undecided"))
        finally:
            self._storer = None


__all__ = ["PendingReport", "ReportBatches"]
