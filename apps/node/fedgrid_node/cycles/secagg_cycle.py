"""Secure aggregation of a cycle (server_config.secure_aggregation): the rounds, run by the Node.

How a secure cycle differs from a plain one:
- the cohort is the cycle's `max_workers` places: it is fixed the moment the last place is taken
  (a lease lasts until the deadline, so no place is given twice), and devices are numbered 1..n
  in the order they were accepted;
- devices never `report`; after training they go through four rounds (advertise keys, share
  keys, masked input, unmask; fedgrid_protocol.secagg holds the protocol). A round closes when
  every device still in the cycle answered, or at its timeout: `round_timeout` seconds, except
  the first, which waits for training until the cycle's deadline less three round timeouts;
- the Node folds each masked input into one running sum as it arrives, and after the unmask
  round holds the sum of the survivors' quantised updates; the cycle's aggregate is that sum's
  *unweighted* mean (each survivor counts once: a device's sample count would travel in the
  clear, and pre-weighting would break the clipping range), stepped by the strategy as usual;
- nothing of a device's update is written to the database: no report row, only the checkpoint.

The rounds live in memory only: a Node restart aborts the open cycle's secure rounds (devices
are told `secagg_aborted`) and the cycle ends at its deadline without reports.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.lock
import numpy as np
from sqlalchemy import update

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.secagg import SecAggAborted, SecAggAggregator

from ..db.models import Assignment, utcnow
from .aggregation import RunningWeightedSum
from .off_hub import run_off_hub
from .open_cycle import OpenCycle
from .report_checks import TensorSpec
from .server_config import ServerConfig
from .statuses import AssignmentStatus, CloseReason

if TYPE_CHECKING:
    from .engine import CycleEngine

log = logging.getLogger("fedgrid.node.secagg")

ROUND_NAMES = {SecAggAggregator.ADVERTISE: "advertise-keys", SecAggAggregator.SHARE: "share-keys",
               SecAggAggregator.MASKED_INPUT: "masked-input", SecAggAggregator.UNMASK: "unmask",
               SecAggAggregator.DONE: "done"}
TRAINING_ROUNDS_AFTER = 3  # rounds after the first that must still fit before the deadline


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _aborted(message: str) -> ApiError:
    return ApiError("secagg_aborted", message, 409)


def _invalid(message: str) -> ApiError:
    return ApiError("secagg_message_invalid", message, 400)


def _not_in_round() -> ApiError:
    return ApiError("secagg_not_in_round",
                    "this assignment takes no part in the cycle's current secure round (it "
                    "missed an earlier round, or this round closed); drop this work", 409)


class SecureCycle:
    """The secure rounds of one open cycle, over its fixed cohort."""

    def __init__(self, engine: CycleEngine, state: OpenCycle, config: ServerConfig,
                 spec: TensorSpec, cohort: list[int]) -> None:
        self.engine = engine
        self.state = state
        self.settings = config.secure_aggregation
        self.spec = spec
        self.names = sorted(spec)
        self.index_of = {assignment_id: i for i, assignment_id in enumerate(cohort, start=1)}
        self.assignment_of = {i: a for a, i in self.index_of.items()}
        length = sum(int(np.prod(spec[name][0], dtype=np.int64)) for name in self.names)
        self.aggregator = SecAggAggregator(self.settings.params(), list(self.assignment_of), length,
                                           rng=engine.rng)
        self.lock = gevent.lock.RLock()
        self.changed = gevent.event.Event()  # replaced at every round change, waking long-polls
        self.roster: dict[int, tuple[bytes, bytes]] = {}
        self.neighbours: dict[int, list[int]] = {}
        self.boxes: dict[int, dict[int, bytes]] = {}
        self.survivors: list[int] = []
        self.dropped: list[int] = []
        self.failure: str | None = None
        self.round_closes = self._round_deadline()
        self.stopped = False  # the cycle closed or was forgotten: the timer ends (stop)
        self._rescheduled = gevent.event.Event()  # round_closes moved: the timer re-reads it
        self.timer = gevent.spawn(self._time_rounds)

    # ----------------------------------------------------------------------------- rounds

    @property
    def round_name(self) -> str:
        return ROUND_NAMES[self.aggregator.round]

    def _expected(self) -> set[int]:
        """Who takes part in the current round: once all of them answered, it closes early."""
        a = self.aggregator
        return {a.ADVERTISE: set(a.cohort), a.SHARE: set(a.keys), a.MASKED_INPUT: a.shared,
                a.UNMASK: a.masked}.get(a.round, set())

    def _answered(self) -> set[int]:
        a = self.aggregator
        return {a.ADVERTISE: set(a.keys), a.SHARE: a.shared, a.MASKED_INPUT: a.masked,
                a.UNMASK: a.unmasked}.get(a.round, set())

    def _round_deadline(self):
        timeout = timedelta(seconds=self.settings.round_timeout)
        now = utcnow()
        if self.aggregator.round == SecAggAggregator.ADVERTISE:
            # The first round waits for training: as long as the cycle leaves room for the rest.
            return max(now + timeout, self.state.deadline - TRAINING_ROUNDS_AFTER * timeout)
        return now + timeout

    def _time_rounds(self) -> None:
        while (self.failure is None and self.aggregator.round != SecAggAggregator.DONE
               and not self.stopped):
            if self.state.closed:
                self._fail("the cycle closed before its secure rounds completed")
                return
            wait = (self.round_closes - utcnow()).total_seconds()
            if wait > 0:
                # Woken early when a round closes because everyone answered; the cycle's close
                # kills this timer (SecureCycles.forget).
                self._rescheduled.clear()
                self._rescheduled.wait(wait)
                continue
            with self.lock:
                if self.round_closes <= utcnow():
                    self._close_round()

    def _close_round(self) -> None:
        """Close the current round (everyone answered, or its time is up); the last one sums."""
        a = self.aggregator
        try:
            if a.round == a.ADVERTISE:
                self.roster, self.neighbours = a.close_keys()
            elif a.round == a.SHARE:
                self.boxes = a.close_shares()
            elif a.round == a.MASKED_INPUT:
                self.survivors, self.dropped = a.close_masked_inputs()
            elif a.round == a.UNMASK:
                self._finish()
                return
        except SecAggAborted as exc:
            self._fail(str(exc))
            return
        log.info("cycle %s of %s: secure round %s opened", self.state.sequence, self.state.label,
                 self.round_name)
        self.round_closes = self._round_deadline()
        self._rescheduled.set()
        self._wake()

    def _finish(self) -> None:
        started = time.perf_counter()
        try:
            total, count = run_off_hub(self.aggregator.finish)
        except SecAggAborted as exc:
            self._fail(str(exc))
            return
        running = RunningWeightedSum(self.spec)
        offset = 0
        for name in self.names:
            shape = self.spec[name][0]
            size = int(np.prod(shape, dtype=np.int64))
            running.sums[name] = total[offset:offset + size].reshape(shape)
            offset += size
        running.total_samples = running.count = count
        survivors = [self.assignment_of[i] for i in self.aggregator.masked]
        self.engine.secure_sum_ready(self.state, running, survivors)
        log.info("cycle %s of %s: the secure sum of %d updates is unmasked (%.3f s)",
                 self.state.sequence, self.state.label, count, time.perf_counter() - started)
        self._wake()

    def _fail(self, message: str) -> None:
        self.failure = message
        self._rescheduled.set()
        log.warning("cycle %s of %s: secure aggregation aborted: %s", self.state.sequence,
                    self.state.label, message)
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, gevent.event.Event()
        changed.set()

    def _after_message(self) -> None:
        if self._answered() >= self._expected():
            self._close_round()

    def stop(self) -> None:
        # The timer is told, never killed: killed in the middle of a database round trip (the
        # last round's close writes), it would leave its pooled connection mid-query.
        self.stopped = True
        self._rescheduled.set()
        self._wake()

    # ----------------------------------------------------------------------------- devices

    def _index(self, assignment_id: int) -> int:
        index = self.index_of.get(assignment_id)
        if index is None:
            raise _not_in_round()
        return index

    def _check(self, round_number: int, index: int) -> None:
        if self.failure is not None:
            raise _aborted(f"this cycle's secure aggregation was aborted: {self.failure}")
        if self.aggregator.round != round_number or index in self._answered():
            raise _not_in_round()

    def view(self, assignment_id: int) -> dict[str, Any]:
        """The round and what this device needs for it."""
        index = self._index(assignment_id)
        if self.failure is not None:
            raise _aborted(f"this cycle's secure aggregation was aborted: {self.failure}")
        a = self.aggregator
        answer: dict[str, Any] = {
            "status": "success", "round": self.round_name, "index": index,
            "cohort": len(a.cohort), "sent": index in self._answered(),
            "timeout": max(0.0, round((self.round_closes - utcnow()).total_seconds(), 3)),
        }
        if a.round == a.DONE:
            answer["timeout"] = None
            return answer
        if index not in self._expected():
            raise _not_in_round()
        if a.round == a.SHARE:
            answer["roster"] = {str(i): [_b64(c), _b64(s)] for i, (c, s) in self.roster.items()}
            answer["neighbours"] = self.neighbours[index]
        elif a.round == a.MASKED_INPUT:
            answer["boxes"] = {str(v): _b64(box) for v, box in self.boxes.get(index, {}).items()}
        elif a.round == a.UNMASK:
            answer["survivors"], answer["dropped"] = self.survivors, self.dropped
        return answer

    def receive(self, assignment_id: int, round_name: str, fields: Mapping[str, Any]) -> dict:
        with self.lock:
            index = self._index(assignment_id)
            a = self.aggregator
            round_number = next(n for n, name in ROUND_NAMES.items() if name == round_name)
            self._check(round_number, index)
            try:
                if round_number == a.ADVERTISE:
                    a.receive_keys(index, fields["c_public"], fields["s_public"])
                elif round_number == a.SHARE:
                    a.receive_shares(index, _by_index(fields["boxes"]))
                elif round_number == a.MASKED_INPUT:
                    a.receive_masked_input(index, fields["masked_input"])
                else:
                    a.receive_unmask(index, _by_index(fields["shares"]))
            except ValueError as exc:
                raise _invalid(str(exc)) from None
            self._after_message()
        return {"status": "success", "round": round_name}


def _by_index(items: Mapping[str, bytes]) -> dict[int, bytes]:
    return {int(key): bytes(value) for key, value in items.items()}


class SecureCycles:
    """The engine's secure cycles, by cycle id, and the events' way to them."""

    def __init__(self, engine: CycleEngine) -> None:
        self.engine = engine
        self._cycles: dict[int, SecureCycle] = {}
        self._cohort_fixed: dict[int, gevent.event.Event] = {}

    def places_taken(self, state: OpenCycle, config: ServerConfig, spec: TensorSpec) -> None:
        """Called under the cycle's lock after a place was taken: the last one fixes the cohort."""
        current = self._cycles.get(state.cycle_id)
        # An aborted cohort makes way for a new one once its places are free again (their
        # leases end at the deadline; an extended cycle then takes fresh devices).
        if (config.secure_aggregation is None or state.places_taken < config.max_workers
                or (current is not None and current.failure is None)):
            return
        if current is not None:
            current.stop()
        cohort = list(state.outstanding)  # acceptance order
        self._cycles[state.cycle_id] = SecureCycle(self.engine, state, config, spec, cohort)
        log.info("cycle %s of %s: secure cohort of %d fixed", state.sequence, state.label,
                 len(cohort))
        fixed = self._cohort_fixed.pop(state.cycle_id, None)
        if fixed is not None:
            fixed.set()

    def forget(self, cycle_id: int) -> None:
        secure = self._cycles.pop(cycle_id, None)
        if secure is not None:
            secure.stop()
        fixed = self._cohort_fixed.pop(cycle_id, None)
        if fixed is not None:
            fixed.set()

    def stop(self) -> None:
        for cycle_id in list(self._cycles):
            self.forget(cycle_id)

    def _find(self, worker_id: str, request_key: str) -> tuple[int, int, OpenCycle | None, int]:
        with self.engine.db.session() as session:
            assignment = self.engine.find_assignment(session, worker_id, request_key)
            process_id = assignment.cycle.process_id
            config = self.engine.config(session, process_id)
            if config.secure_aggregation is None:
                raise ApiError("not_secure_cycle",
                               "this assignment's cycle does not aggregate securely; report "
                               "with `report`", 409)
            if assignment.status != AssignmentStatus.ACCEPTED:
                raise _not_in_round()
            state = self.engine.open_cycle(process_id)
            return assignment.id, assignment.cycle_id, state, config.max_workers

    def round(self, worker_id: str, request_key: str, wait: float) -> dict[str, Any]:
        assignment_id, cycle_id, state, places = self._find(worker_id, request_key)
        give_up = time.monotonic() + wait
        while True:
            secure = self._cycles.get(cycle_id)
            if secure is None:
                if state is None or state.cycle_id != cycle_id or state.closed:
                    raise _aborted("the cycle closed before its secure rounds completed")
                if state.places_taken >= places:
                    # The last place fixes the cohort at once (places_taken): its rounds are gone,
                    # so the Node restarted since. They lived in memory only.
                    raise _aborted("the Node restarted during this cycle's secure rounds")
                if time.monotonic() >= give_up:
                    return {"status": "success", "round": "cohort", "sent": False,
                            "timeout": max(0.0, round((state.deadline - utcnow()).total_seconds(), 3))}
                fixed = self._cohort_fixed.setdefault(cycle_id, gevent.event.Event())
                fixed.wait(max(0.0, give_up - time.monotonic()))
                continue
            changed = secure.changed
            answer = secure.view(assignment_id)
            if not answer["sent"] or answer["round"] == "done" or time.monotonic() >= give_up:
                return answer
            changed.wait(max(0.0, give_up - time.monotonic()))

    def receive(self, worker_id: str, request_key: str, round_name: str,
                fields: Mapping[str, Any]) -> dict[str, Any]:
        assignment_id, cycle_id, state, places = self._find(worker_id, request_key)
        secure = self._cycles.get(cycle_id)
        if secure is None:
            if state is not None and state.cycle_id == cycle_id and state.places_taken >= places:
                raise _aborted("the Node restarted during this cycle's secure rounds")
            raise _not_in_round()
        return secure.receive(assignment_id, round_name, fields)


def mark_survivors_reported(session, assignment_ids: list[int]) -> None:
    """Survivors' assignments count as reported (no diff row: there is no individual update)."""
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_(assignment_ids), Assignment.status == AssignmentStatus.ACCEPTED)
        .values(status=AssignmentStatus.REPORTED, reported_at=utcnow())
    )


__all__ = ["CloseReason", "SecureCycle", "SecureCycles", "mark_survivors_reported"]
