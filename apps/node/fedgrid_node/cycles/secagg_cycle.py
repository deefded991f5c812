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
- no report row is written: the only lasting trace of the updates is the checkpoint.

The rounds survive a restart (secagg_store.py): every message the Node acknowledges is written
before its acknowledgement, with the rounds' state (the cohort's numbering, the seed of the
neighbour graph, the current round and when it closes, an abort). At startup an open secure
cycle's rounds are rebuilt by replaying the stored messages, in round order, into a fresh
aggregator (the same messages and the same seed give the same rounds), and its timer takes up
the stored close time: a round whose time passed during the downtime closes at once. Devices
retry across the restart (both SDKs) and find the round where they left it; a device sending a
message that was acknowledged, again, is told the same. The stored messages include the masked
inputs: each is masked by its own self mask and its pairwise masks, so it tells the Node nothing
the running sum would not. They are deleted with the cycle's close, in its transaction.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.lock
import numpy as np
from sqlalchemy import select, update

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.secagg import SecAggAborted, SecAggAggregator, wire

from ..db.models import Assignment, utcnow
from .aggregation import RunningWeightedSum
from .off_hub import run_off_hub
from .open_cycle import OpenCycle
from .report_checks import TensorSpec
from .secagg_store import SecureRoundStore, decode_message, encode_message
from .server_config import ServerConfig
from .statuses import AssignmentStatus, AssignmentTask, CloseReason

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
                    "missed an earlier round, this round closed, or it already sent another "
                    "message for this round); drop this work", 409)


class SecureCycle:
    """The secure rounds of one open cycle, over its fixed cohort."""

    def __init__(self, engine: CycleEngine, state: OpenCycle, config: ServerConfig,
                 spec: TensorSpec, cohort: list[int], graph_seed: int) -> None:
        """Not yet running: `begin` (a cohort just fixed) or `replay` (after a restart), then
        `start`."""
        self.engine = engine
        self.state = state
        self.settings = config.secure_aggregation
        self.spec = spec
        self.names = sorted(spec)
        self.cohort = list(cohort)
        self.graph_seed = graph_seed
        self.index_of = {assignment_id: i for i, assignment_id in enumerate(cohort, start=1)}
        self.assignment_of = {i: a for a, i in self.index_of.items()}
        length = sum(int(np.prod(spec[name][0], dtype=np.int64)) for name in self.names)
        # The graph is the aggregator's only draw: from a stored seed, a replay draws it again.
        self.aggregator = SecAggAggregator(self.settings.params(), list(self.assignment_of), length,
                                           rng=random.Random(graph_seed))
        self.store = SecureRoundStore(engine.db, state.cycle_id)
        # (round, device) -> SHA-256 of the acknowledged message: a resent one is recognised
        # without keeping any message itself in memory.
        self.digests: dict[tuple[int, int], bytes] = {}
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
        self.timer: gevent.Greenlet | None = None

    def begin(self) -> None:
        """A cohort was just fixed: its rounds are durable before any device hears of them."""
        self.store.begin(self.cohort, self.graph_seed, self.round_closes)

    def replay(self) -> None:
        """Rebuild the rounds from the store after a restart: every stored message taken in
        again, and each round before the stored one closed again, as it was."""
        stored = self.store.load()
        self.round_closes = stored.round_closes
        if stored.failure is not None:
            self.failure = stored.failure
            return
        a = self.aggregator
        try:
            for round_number, device, data in self.store.messages():
                while a.round < round_number and a.round < stored.round:
                    self._apply_close()
                self._take(round_number, device, decode_message(round_number, data))
                self.digests[(round_number, device)] = hashlib.sha256(data).digest()
            while a.round < stored.round:
                self._apply_close()
        except (SecAggAborted, ValueError) as exc:
            # Not expected (the same messages closed these rounds before); never half-rebuilt.
            self._fail(f"the stored rounds could not be replayed: {exc}")
            return
        log.info("cycle %s of %s: secure rounds restored in round %s with %d stored messages",
                 self.state.sequence, self.state.label, self.round_name, len(self.digests))

    def start(self) -> None:
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
        with self.lock:
            # Restored with every answer of its round in: it closes now, as it would have then.
            if (self.failure is None and not self.stopped
                    and self.aggregator.round != SecAggAggregator.DONE
                    and self._answered() >= self._expected()):
                self._close_round()
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

    def _apply_close(self) -> None:
        """Close the current round (not the last) in memory; SecAggAborted when it cannot."""
        a = self.aggregator
        if a.round == a.ADVERTISE:
            self.roster, self.neighbours = a.close_keys()
        elif a.round == a.SHARE:
            self.boxes = a.close_shares()
        elif a.round == a.MASKED_INPUT:
            self.survivors, self.dropped = a.close_masked_inputs()

    def _close_round(self) -> None:
        """Close the current round (everyone answered, or its time is up); the last one sums."""
        a = self.aggregator
        if a.round == a.UNMASK:
            self._finish()
            return
        try:
            self._apply_close()
        except SecAggAborted as exc:
            self._fail(str(exc))
            return
        log.info("cycle %s of %s: secure round %s opened", self.state.sequence, self.state.label,
                 self.round_name)
        self.round_closes = self._round_deadline()
        try:
            # Before anyone hears of the new round. Were it lost, a replay would close the
            # stored round again the same way: its answers are all stored, or its time passed.
            self.store.round_opened(a.round, self.round_closes)
        except Exception:
            log.exception("cycle %s of %s: could not store the opening of secure round %s",
                          self.state.sequence, self.state.label, self.round_name)
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
        try:
            self.store.failed(message)  # a restart must not take up aborted rounds
        except Exception:
            log.exception("cycle %s of %s: could not store the secure rounds' abort",
                          self.state.sequence, self.state.label)
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
        if self.state.closed:  # its rows are gone with the close: none is stored after it
            raise _aborted("the cycle closed before its secure rounds completed")
        if self.aggregator.round != round_number or index in self._answered():
            raise _not_in_round()

    def view(self, assignment_id: int, whole_roster: bool = True) -> dict[str, Any]:
        """The round and what this device needs for it (`whole_roster` False: of the roster,
        only the keys this device uses, its own and its neighbours')."""
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
            neighbours = self.neighbours[index]
            shown = self.roster if whole_roster else {
                i: self.roster[i] for i in sorted([index, *neighbours])}
            answer["roster"] = {str(i): [_b64(c), _b64(s)] for i, (c, s) in shown.items()}
            answer["advertised"] = len(self.roster)
            answer["neighbours"] = neighbours
        elif a.round == a.MASKED_INPUT:
            answer["boxes"] = {str(v): _b64(box) for v, box in self.boxes.get(index, {}).items()}
        elif a.round == a.UNMASK:
            answer["survivors"], answer["dropped"] = self.survivors, self.dropped
        return answer

    def receive(self, assignment_id: int, round_name: str, fields: Mapping[str, Any]) -> dict:
        acknowledged = {"status": "success", "round": round_name}
        with self.lock:
            index = self._index(assignment_id)
            round_number = next(n for n, name in ROUND_NAMES.items() if name == round_name)
            try:
                payload = _payload(round_number, fields)
                data = encode_message(round_number, payload)
            except ValueError as exc:
                raise _invalid(str(exc)) from None
            digest = hashlib.sha256(data).digest()
            previous = self.digests.get((round_number, index))
            if previous is not None:
                # Sent again (its acknowledgement was lost, or the Node restarted): the same
                # message gets the same answer, whatever the rounds did since; another one is
                # refused as a second answer to the round.
                if previous == digest:
                    return acknowledged
                raise _not_in_round()
            self._check(round_number, index)
            try:
                self._take(round_number, index, payload, check_only=True)
            except ValueError as exc:
                raise _invalid(str(exc)) from None
            # Durable before it counts and before the device is told.
            self.store.add_message(round_number, index, data)
            self._take(round_number, index, payload)
            self.digests[(round_number, index)] = digest
            self._after_message()
        return acknowledged

    def _take(self, round_number: int, index: int, payload, *, check_only: bool = False) -> None:
        a = self.aggregator
        if round_number == a.ADVERTISE:
            (a.check_keys if check_only else a.receive_keys)(index, *payload)
        elif round_number == a.SHARE:
            (a.check_shares if check_only else a.receive_shares)(index, payload)
        elif round_number == a.MASKED_INPUT:
            (a.check_masked_input if check_only else a.receive_masked_input)(index, payload)
        else:
            (a.check_unmask if check_only else a.receive_unmask)(index, payload)


def _payload(round_number: int, fields: Mapping[str, Any]):
    """The message's content, from its binary field (wire.py) or from the JSON form older SDKs
    send (validated already); ValueError for binary bytes that are not the field's layout."""
    if round_number == SecAggAggregator.ADVERTISE:
        if fields.get("public_keys") is not None:
            return wire.decode_keys(fields["public_keys"])
        return bytes(fields["c_public"]), bytes(fields["s_public"])
    if round_number == SecAggAggregator.MASKED_INPUT:
        return bytes(fields["masked_input"])
    items = fields["boxes" if round_number == SecAggAggregator.SHARE else "shares"]
    if isinstance(items, Mapping):
        return {int(key): bytes(value) for key, value in items.items()}
    return wire.decode_entries(items)


class SecureCycles:
    """The engine's secure cycles, by cycle id, and the events' way to them."""

    def __init__(self, engine: CycleEngine) -> None:
        self.engine = engine
        self._cycles: dict[int, SecureCycle] = {}
        self._cohort_fixed: dict[int, gevent.event.Event] = {}

    def places_taken(self, state: OpenCycle, config: ServerConfig, spec: TensorSpec,
                     cohort: list[int] | None = None) -> None:
        """Called under the cycle's lock after a place was taken: the last one fixes the cohort
        (`cohort`: the assignments in acceptance order, when memory does not have that order)."""
        current = self._cycles.get(state.cycle_id)
        # An aborted cohort makes way for a new one once its places are free again (their
        # leases end at the deadline; an extended cycle then takes fresh devices).
        if (config.secure_aggregation is None or state.places_taken < config.max_workers
                or (current is not None and current.failure is None)):
            return
        if current is not None:
            current.stop()
        cohort = list(state.outstanding) if cohort is None else cohort  # acceptance order
        secure = SecureCycle(self.engine, state, config, spec, cohort,
                             graph_seed=secrets.randbits(63))
        with secure.lock:
            # Found at once (the cohort is fixed: a long-poll must not take it for lost while
            # it is being stored); messages wait on its lock until it is stored.
            self._start(state, secure)
            try:
                secure.begin()
            except Exception:
                # The place itself is committed: the rounds go on, held in memory only (a
                # restart would fix the cohort again from the stored places and start over).
                log.exception("cycle %s of %s: could not store the secure cohort",
                              state.sequence, state.label)
        log.info("cycle %s of %s: secure cohort of %d fixed", state.sequence, state.label,
                 len(cohort))

    def restore(self, state: OpenCycle) -> None:
        """At startup (engine._restore): take up an open cycle's secure rounds from the store,
        or fix its cohort if its last place was taken just before a crash."""
        with self.engine.db.session() as session:
            config = self.engine.config(session, state.process_id)
            if config.secure_aggregation is None:
                return
            spec = self.engine.spec(session, state.process_id)
            stored = SecureRoundStore(self.engine.db, state.cycle_id).load()
            if stored is None:
                cohort = session.scalars(
                    select(Assignment.id)
                    .where(Assignment.cycle_id == state.cycle_id,
                           Assignment.status == AssignmentStatus.ACCEPTED,
                           Assignment.task == AssignmentTask.TRAIN)
                    .order_by(Assignment.assigned_at, Assignment.id)
                ).all()
        if stored is None:
            with state.lock:
                self.places_taken(state, config, spec, cohort=list(cohort))
            return
        secure = SecureCycle(self.engine, state, config, spec, stored.cohort,
                             graph_seed=stored.graph_seed)
        with secure.lock:
            secure.replay()
        self._start(state, secure)

    def _start(self, state: OpenCycle, secure: SecureCycle) -> None:
        self._cycles[state.cycle_id] = secure
        secure.start()
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

    def _find(self, worker_id: str, request_key: str,
              reported_ok: bool = False) -> tuple[int, int, OpenCycle | None, int, bool]:
        """(assignment, cycle, the open cycle, places, whether the assignment is in the sum
        already: only with `reported_ok`, else that is `secagg_not_in_round`)."""
        with self.engine.db.session() as session:
            assignment = self.engine.find_assignment(session, worker_id, request_key)
            process_id = assignment.cycle.process_id
            config = self.engine.config(session, process_id)
            if config.secure_aggregation is None:
                raise ApiError("not_secure_cycle",
                               "this assignment's cycle does not aggregate securely; report "
                               "with `report`", 409)
            if assignment.status == AssignmentStatus.REPORTED and reported_ok:
                return assignment.id, assignment.cycle_id, None, config.max_workers, True
            if assignment.status != AssignmentStatus.ACCEPTED:
                raise _not_in_round()
            state = self.engine.open_cycle(process_id)
            return assignment.id, assignment.cycle_id, state, config.max_workers, False

    def round(self, worker_id: str, request_key: str, wait: float,
              whole_roster: bool = True) -> dict[str, Any]:
        assignment_id, cycle_id, state, places, _ = self._find(worker_id, request_key)
        give_up = time.monotonic() + wait
        while True:
            secure = self._cycles.get(cycle_id)
            if secure is None:
                if state is None or state.cycle_id != cycle_id or state.closed:
                    raise _aborted("the cycle closed before its secure rounds completed")
                if state.places_taken >= places:
                    # The last place fixes the cohort at once (places_taken), and a restart
                    # restores it: its rounds are over.
                    raise _aborted("the cycle's secure rounds are over")
                if time.monotonic() >= give_up:
                    return {"status": "success", "round": "cohort", "sent": False,
                            "timeout": max(0.0, round((state.deadline - utcnow()).total_seconds(), 3))}
                fixed = self._cohort_fixed.setdefault(cycle_id, gevent.event.Event())
                fixed.wait(max(0.0, give_up - time.monotonic()))
                continue
            changed = secure.changed
            answer = secure.view(assignment_id, whole_roster)
            if not answer["sent"] or answer["round"] == "done" or time.monotonic() >= give_up:
                return answer
            changed.wait(max(0.0, give_up - time.monotonic()))

    def receive(self, worker_id: str, request_key: str, round_name: str,
                fields: Mapping[str, Any]) -> dict[str, Any]:
        assignment_id, cycle_id, state, places, summed = self._find(worker_id, request_key,
                                                                    reported_ok=True)
        if summed:
            # Its update is in the cycle's sum and the rounds are over: a message sent again
            # after the acknowledgement was lost (often the unmask shares) is told what it was.
            return {"status": "success", "round": round_name}
        secure = self._cycles.get(cycle_id)
        if secure is None:
            if state is not None and state.cycle_id == cycle_id and state.places_taken >= places:
                raise _aborted("the cycle's secure rounds are over")
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
