"""The researcher's controls over a hosted process: pause, resume, stop and delete.

The states and what each control does are in statuses.py. How they stay consistent with the
engine (engine.py), whose rules these follow:

- a control acts under the open cycle's lock and re-checks `closed` after taking it (the cycle
  may have closed into the next one meanwhile: then it starts over on that one);
- the database commits first, memory follows: a restart rebuilds the same state from the process
  status (`_restore` reads `paused`), so a pause survives a restart and a stop never leaves an
  open cycle behind (stop closes the cycle and sets the status in one transaction);
- waiters are woken with `notify`: held long-polls are answered (`process_paused`, or
  `process_unknown` after a delete) and WebSockets that asked for `notify` are pushed at resume.

Pausing keeps the open cycle open rather than closing it: closing would refuse the reports of the
devices already training in it (work lost for nothing), or aggregate a cycle the researcher may
have paused to look at. Instead its clock stops: no deadline, no lease expiry, no close at the
goal; reports keep arriving and are stored and counted. Resuming gives the cycle a fresh deadline
(a cycle length from now) and its outstanding assignments fresh leases, since the time they were
given included the pause.

Every control is idempotent where the wanted state is already reached (`changed: false`), and
answers `process_state_conflict` (409) where the process's status does not allow it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from fedgrid_protocol.errors import ApiError

from ..db.database import Database
from ..db.models import (
    Assignment,
    Checkpoint,
    Cycle,
    Model,
    Plan,
    Process,
    ReportDiff,
    SecureMessage,
    SecureRound,
    Worker,
    utcnow,
)
from .engine import CycleEngine
from .statuses import AssignmentStatus, AssignmentTask, CloseReason, CycleStatus, ProcessStatus

log = logging.getLogger("fedgrid.node.cycles")

# The statuses a process may leave by each control; reaching the target itself is a no-op.
PAUSABLE = frozenset({ProcessStatus.ACTIVE})
RESUMABLE = frozenset({ProcessStatus.PAUSED})
STOPPABLE = frozenset({ProcessStatus.ACTIVE, ProcessStatus.PAUSED})
DELETABLE = frozenset({ProcessStatus.PAUSED, ProcessStatus.STOPPED, ProcessStatus.FINISHED})


class ProcessControl:
    def __init__(self, db: Database, engine: CycleEngine) -> None:
        self.db = db
        self.engine = engine

    # ----------------------------------------------------------------------------- controls

    def pause(self, process_id: int) -> dict[str, Any]:
        with self._holding_open_cycle(process_id) as state:
            with self.db.session() as session:
                process = self._locked(session, process_id)
                if process.status == ProcessStatus.PAUSED:
                    return self._answer(process, changed=False)
                self._check(process, PAUSABLE, "pause")
                process.status = ProcessStatus.PAUSED
                answer = self._answer(process, changed=True)
            if state is not None:
                state.paused = True
                state.paused_since = utcnow()
                state.wakeup.set()  # the watcher stops its clock
        log.info("process %s paused", process_id)
        self.engine.notify(process_id)  # held long-polls are answered process_paused
        return answer

    def resume(self, process_id: int) -> dict[str, Any]:
        with self._holding_open_cycle(process_id) as state:
            with self.db.session() as session:
                process = self._locked(session, process_id)
                if process.status == ProcessStatus.ACTIVE:
                    return self._answer(process, changed=False)
                self._check(process, RESUMABLE, "resume")
                process.status = ProcessStatus.ACTIVE
                fresh = None
                if state is not None:
                    fresh = self._fresh_clock(session, process_id, state)
                answer = self._answer(process, changed=True)
            if state is not None:
                deadline, expires = fresh
                state.deadline = deadline
                for assignment_id in state.outstanding:
                    state.outstanding[assignment_id] = expires
                state.paused = False
                if state.paused_since is not None:
                    state.paused_seconds += (utcnow() - state.paused_since).total_seconds()
                    state.paused_since = None
                state.wakeup.set()  # the watcher runs the clock again (closes at a goal)
        log.info("process %s resumed", process_id)
        self.engine.notify(process_id)  # places are open again
        return answer

    def stop(self, process_id: int) -> dict[str, Any]:
        """Close the open cycle now (aggregated with a quorum, else abandoned); no cycle follows."""
        with self._holding_open_cycle(process_id) as state:
            with self.db.session() as session:
                process = self._locked(session, process_id)
                if process.status == ProcessStatus.STOPPED:
                    return self._answer(process, changed=False)
                self._check(process, STOPPABLE, "stop")
                if state is None:
                    # No cycle in memory (only between a hosting's commit and its tracking):
                    # nothing was reported to aggregate.
                    process.status = ProcessStatus.STOPPED
                    self._abandon_open_rows(session, process_id)
            if state is not None:
                # Sets the status in the close's own transaction; re-enters the lock we hold.
                self.engine.close_cycle(process_id, state.cycle_id, reason=CloseReason.STOPPED)
        with self.db.session() as session:
            process = session.get(Process, process_id)
            closed = None
            if state is not None:
                cycle = session.get(Cycle, state.cycle_id)
                closed = {"sequence": cycle.sequence, "status": cycle.status,
                          "checkpoint": (cycle.summary or {}).get("checkpoint",
                                                                  cycle.checkpoint_number)}
            answer = self._answer(process, changed=True, cycle=closed)
        log.info("process %s stopped by its researcher", process_id)
        self.engine.notify(process_id)  # held long-polls are answered training_stopped
        return answer

    def delete(self, process_id: int, *, force: bool = False) -> dict[str, Any]:
        """Remove the process and everything it owns in one transaction."""
        with self._holding_open_cycle(process_id):  # no report or request acts on it meanwhile
            with self.db.session() as session:
                process = self._locked(session, process_id)
                if not force:
                    self._check(process, DELETABLE, "delete",
                                hint="stop it first, or delete with force")
                answer = {"status": "success", "model": process.name,
                          "version": process.version, "deleted": True}
                self._delete_rows(session, process_id)
            # Committed: now memory lets go (a report or request waiting on this lock finds
            # the cycle closed, then no process).
            self.engine.forget(process_id)
        log.info("process %s (%s %s) deleted", process_id, answer["model"], answer["version"])
        self.engine.notify(process_id)  # held long-polls are answered process_unknown
        return answer

    # ----------------------------------------------------------------------------- helpers

    @contextmanager
    def _holding_open_cycle(self, process_id: int):
        """The process's open cycle with its lock held (None when it has none in memory): a
        control that waited for the lock while the cycle closed into the next one acts on that
        one instead, as the engine's own requests do."""
        while True:
            state = self.engine.open_cycle(process_id)
            if state is None:
                yield None
                return
            with state.lock:
                if not state.closed:
                    yield state
                    return

    @staticmethod
    def _locked(session, process_id: int) -> Process:
        process = session.get(Process, process_id, with_for_update=True)
        if process is None:  # deleted by a concurrent call
            raise ApiError("process_unknown", "no hosted model with that id", 404)
        return process

    @staticmethod
    def _check(process: Process, allowed: frozenset, control: str, hint: str | None = None) -> None:
        if process.status in allowed:
            return
        message = f"cannot {control} {process.name} version {process.version}: it is {process.status}"
        if hint:
            message += f"; {hint}"
        raise ApiError("process_state_conflict", message, 409,
                       details={"process_status": process.status, "control": control})

    def _fresh_clock(self, session, process_id: int, state) -> tuple:
        """A deadline a cycle length from now, and fresh leases (within it) for the assignments
        still training, written to the cycle's rows before memory follows."""
        config = self.engine.config(session, process_id)
        now = utcnow()
        deadline = now + timedelta(seconds=config.cycle_length)
        expires = min(deadline, now + timedelta(seconds=self.engine.lease_seconds(config, process_id)))
        session.execute(update(Cycle).where(Cycle.id == state.cycle_id).values(deadline=deadline))
        # Every training assignment still out (on replicas, `state` may not know all of them).
        session.execute(
            update(Assignment)
            .where(Assignment.cycle_id == state.cycle_id,
                   Assignment.status == AssignmentStatus.ACCEPTED,
                   Assignment.task == AssignmentTask.TRAIN)
            .values(expires_at=expires)
        )
        return deadline, expires

    @staticmethod
    def _abandon_open_rows(session, process_id: int) -> None:
        now = utcnow()
        session.execute(
            update(Cycle)
            .where(Cycle.process_id == process_id, Cycle.status == CycleStatus.OPEN)
            .values(status=CycleStatus.ABANDONED, closed_at=now,
                    summary={"reason": str(CloseReason.STOPPED), "abandoned_because": "no_quorum"})
        )

    @staticmethod
    def _delete_rows(session, process_id: int) -> None:
        # Children first, each by a subquery on the process: nothing is loaded into memory (the
        # checkpoints and diffs may be large), and nothing depends on the database cascading.
        cycles = select(Cycle.id).where(Cycle.process_id == process_id)
        assignments = select(Assignment.id).where(Assignment.cycle_id.in_(cycles))
        models = select(Model.id).where(Model.process_id == process_id)
        for statement in (
            delete(ReportDiff).where(ReportDiff.assignment_id.in_(assignments)),
            delete(Assignment).where(Assignment.cycle_id.in_(cycles)),
            delete(SecureMessage).where(SecureMessage.cycle_id.in_(cycles)),
            delete(SecureRound).where(SecureRound.cycle_id.in_(cycles)),
            delete(Cycle).where(Cycle.process_id == process_id),
            delete(Worker).where(Worker.process_id == process_id),
            delete(Checkpoint).where(Checkpoint.model_id.in_(models)),
            delete(Model).where(Model.process_id == process_id),
            delete(Plan).where(Plan.process_id == process_id),
            delete(Process).where(Process.id == process_id),
        ):
            session.execute(statement.execution_options(synchronize_session=False))

    @staticmethod
    def _answer(process: Process, *, changed: bool, cycle: dict | None = None) -> dict[str, Any]:
        answer = {"status": "success", "model": process.name, "version": process.version,
                  "process_status": process.status, "changed": changed}
        if cycle is not None:
            answer["cycle"] = cycle
        return answer
