"""The cycle engine: hands out places in cycles, takes reports, closes cycles into checkpoints.

What lives where:
- the database is the truth: cycles, assignments, acknowledged reports (with their diff bytes),
  checkpoints and the strategy's state. A report is committed before the device hears "success".
- memory holds, per open cycle, the running weighted sum of the diffs folded so far and the
  deadline timer. Both are rebuilt from the database at start-up (`start`), so a `kill -9` loses
  neither an acknowledged report nor a deadline, and no report is folded twice.

CPU work (validating and folding diffs, the strategy step) runs on gevent's thread pool so the
hub keeps serving other devices meanwhile.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import gevent
import gevent.lock
import numpy as np
from sqlalchemy import delete, func, select, update

from fedgrid_plans import tensors

from ..db.database import Database
from ..db.models import Assignment, Checkpoint, Cycle, Model, Plan, Process, ReportDiff, utcnow
from ..errors import ApiError
from .aggregation import RunningWeightedSum
from .selection import CycleCounts, Speeds, decide, jittered
from .server_config import ServerConfig, parse_server_config
from .strategies import build_strategy

log = logging.getLogger("fedgrid.node.cycles")

MAX_NUM_SAMPLES = 2**31 - 1
MAX_METRICS = 32

TensorSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


# Folding is memory-bound; two threads move about twice the bytes of one on our 2-core machines.
FOLD_THREADS = 2


def _outcome(fn: Callable, *args: Any) -> tuple[bool, Any]:
    # Exceptions travel back as values: raised inside a pool thread, gevent would print each one
    # (an expected `diff_mismatch` included) as an unhandled traceback.
    try:
        return True, fn(*args)
    except Exception as exc:
        return False, exc


def _unwrap(outcome: tuple[bool, Any]) -> Any:
    ok, value = outcome
    if not ok:
        raise value
    return value


def run_off_hub(fn: Callable, *args: Any) -> Any:
    """Run CPU-bound numpy work in gevent's thread pool (numpy releases the GIL).

    Only pure computation goes there: database sessions and sockets belong to the hub's thread.
    """
    return _unwrap(gevent.get_hub().threadpool.apply(_outcome, (fn, *args)))


def fold_off_hub(running: RunningWeightedSum, diff, num_samples: int) -> None:
    """Fold one report on `FOLD_THREADS` pool threads (disjoint slices), the hub stays free."""
    pool = gevent.get_hub().threadpool
    parts = [pool.spawn(_outcome, running.fold_part, diff, num_samples, part, FOLD_THREADS)
             for part in range(FOLD_THREADS)]
    for part in parts:
        _unwrap(part.get())
    running.finish_fold(num_samples)


@dataclass
class OpenCycle:
    """What the engine keeps in memory for one open cycle."""

    cycle_id: int
    process_id: int
    sequence: int
    checkpoint_number: int  # the checkpoint this cycle trains
    started_at: datetime
    deadline: datetime
    running: RunningWeightedSum
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_weights: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    requests: int = 0
    rejected: Counter = field(default_factory=Counter)
    lock: gevent.lock.RLock = field(default_factory=gevent.lock.RLock)
    timer: gevent.Greenlet | None = None

    def fold_metrics(self, metrics: Mapping[str, float] | None, num_samples: int) -> None:
        for key, value in (metrics or {}).items():
            self.metric_sums[key] = self.metric_sums.get(key, 0.0) + float(value) * num_samples
            self.metric_weights[key] = self.metric_weights.get(key, 0) + num_samples

    def weighted_metrics(self) -> dict[str, float]:
        return {k: self.metric_sums[k] / self.metric_weights[k] for k in self.metric_sums}

    def counts(self, now: datetime) -> CycleCounts:
        """What selection and pace steering need to know about this cycle right now."""
        return CycleCounts(
            accepted=self.accepted,
            requests=self.requests,
            elapsed_seconds=(now - self.started_at).total_seconds(),
            remaining_seconds=max(0.0, (self.deadline - now).total_seconds()),
            reported=self.running.count,
        )


class CycleEngine:
    def __init__(self, db: Database, *, rng: random.Random | None = None) -> None:
        self.db = db
        self.rng = rng or random.Random()
        self._open: dict[int, OpenCycle] = {}  # process_id -> its open cycle
        self._configs: dict[int, ServerConfig] = {}
        self._specs: dict[int, TensorSpec] = {}
        self._plan_ids: dict[int, dict[str, int]] = {}

    # ----------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Restore every open cycle from the database and re-arm its deadline."""
        with self.db.session() as session:
            cycle_ids = session.scalars(select(Cycle.id).where(Cycle.status == "open")).all()
        for cycle_id in cycle_ids:
            self._restore(cycle_id)

    def stop(self) -> None:
        for state in self._open.values():
            if state.timer is not None:
                state.timer.kill(block=False)
        self._open.clear()

    def _restore(self, cycle_id: int) -> OpenCycle:
        with self.db.session() as session:
            cycle = session.get(Cycle, cycle_id)
            state = self._new_state(session, cycle)
            state.accepted = session.scalar(
                select(func.count()).select_from(Assignment).where(Assignment.cycle_id == cycle_id)
            )
            reports = session.execute(
                select(Assignment.num_samples, Assignment.metrics, ReportDiff.data)
                .join(ReportDiff, ReportDiff.assignment_id == Assignment.id)
                .where(Assignment.cycle_id == cycle_id)
                # The order they were acknowledged in, so the float64 sum is rebuilt exactly.
                .order_by(Assignment.reported_at, Assignment.id)
                .execution_options(yield_per=1)
            )
            # Stored reports are folded again one at a time: memory stays O(model).
            for num_samples, metrics, data in reports:
                diff = tensors.decode(data)
                state.running.fold(diff, num_samples)
                state.fold_metrics(metrics, num_samples)
        if state.running.count:
            log.info("cycle %s restored with %d stored reports", cycle_id, state.running.count)
        self._arm(state)
        return state

    def _new_state(self, session, cycle: Cycle) -> OpenCycle:
        state = OpenCycle(
            cycle_id=cycle.id,
            process_id=cycle.process_id,
            sequence=cycle.sequence,
            checkpoint_number=cycle.checkpoint_number,
            started_at=cycle.started_at,
            deadline=cycle.deadline,
            running=RunningWeightedSum(self.spec(session, cycle.process_id)),
        )
        self._open[cycle.process_id] = state
        return state

    def _arm(self, state: OpenCycle) -> None:
        if state.timer is not None:
            state.timer.kill(block=False)
        delay = max(0.0, (state.deadline - utcnow()).total_seconds())
        state.timer = gevent.spawn_later(delay, self._on_deadline, state.cycle_id, state.process_id)

    def _on_deadline(self, cycle_id: int, process_id: int) -> None:
        try:
            self.close_cycle(process_id, cycle_id, reason="deadline")
        except Exception:  # a timer has nobody to report to but the log
            log.exception("closing cycle %s at its deadline failed", cycle_id)

    # ----------------------------------------------------------------------------- lookups

    def config(self, session, process_id: int) -> ServerConfig:
        """The process's parsed server_config (it never changes once hosted, so it is cached)."""
        if process_id not in self._configs:
            process = session.get(Process, process_id)
            self._configs[process_id] = parse_server_config(process.server_config)
        return self._configs[process_id]

    def spec(self, session, process_id: int) -> TensorSpec:
        """Names, shapes and dtypes of the process's parameters, from checkpoint 1's header."""
        if process_id not in self._specs:
            data = session.scalar(
                select(Checkpoint.data)
                .join(Model, Model.id == Checkpoint.model_id)
                .where(Model.process_id == process_id, Checkpoint.number == 1)
            )
            decoded = tensors.decode(data)
            self._specs[process_id] = {n: (a.shape, a.dtype) for n, a in decoded.items()}
        return self._specs[process_id]

    def plan_ids(self, session, process_id: int) -> dict[str, int]:
        """Client plan name -> id; fixed once hosted, so cached like the config."""
        if process_id not in self._plan_ids:
            rows = session.execute(
                select(Plan.id, Plan.name).where(Plan.process_id == process_id, Plan.kind == "client")
            ).all()
            self._plan_ids[process_id] = {name: plan_id for plan_id, name in rows}
        return self._plan_ids[process_id]

    def cycle_metrics(self, cycle: Cycle) -> dict[str, Any]:
        """A cycle's figures: from its summary once closed, live from memory while open."""
        metrics: dict[str, Any] = {
            "sequence": cycle.sequence,
            "status": cycle.status,
            "checkpoint": cycle.checkpoint_number,
            "started_at": cycle.started_at.isoformat() + "Z",
            "deadline": cycle.deadline.isoformat() + "Z",
            "closed_at": cycle.closed_at.isoformat() + "Z" if cycle.closed_at else None,
        }
        state = self._open.get(cycle.process_id)
        if cycle.status == "open" and state is not None and state.cycle_id == cycle.id:
            metrics.update(
                accepted=state.accepted,
                reported=state.running.count,
                dropped=0,
                rejected=dict(state.rejected),
                num_samples=state.running.total_samples,
                client_metrics=state.weighted_metrics(),
                aggregation_seconds=None,
            )
        else:
            summary = dict(cycle.summary or {})
            summary.pop("checkpoint", None)
            metrics.update(summary)
            metrics["new_checkpoint"] = (cycle.summary or {}).get("checkpoint")
        return metrics

    # ----------------------------------------------------------------------------- hosting

    def open_first_cycle(self, session, process: Process, config: ServerConfig) -> Cycle:
        """Add cycle 1 on checkpoint 1 to a process being hosted (same transaction)."""
        now = utcnow()
        cycle = Cycle(
            process=process,
            sequence=1,
            checkpoint_number=1,
            started_at=now,
            deadline=now + timedelta(seconds=config.cycle_length),
            status="open",
        )
        session.add(cycle)
        return cycle

    def track_hosted(self, process_id: int) -> None:
        """After the hosting transaction committed: start watching its first cycle."""
        with self.db.session() as session:
            cycle_id = session.scalar(
                select(Cycle.id).where(Cycle.process_id == process_id, Cycle.status == "open")
            )
        self._restore(cycle_id)

    # ----------------------------------------------------------------------------- selection

    def request_cycle(self, worker_id: str, process_id: int, speeds: Speeds) -> dict[str, Any]:
        """Accept the worker into the open cycle, or say when to come back (`timeout`, seconds)."""
        state = self._open.get(process_id)
        if state is None:
            # No open cycle: either all cycles are done, or the next one is being opened.
            with self.db.session() as session:
                process = session.get(Process, process_id)
                if process.status == "finished":
                    return {
                        "status": "rejected",
                        "reason": "training_finished",
                        "model": process.name,
                        "version": process.version,
                    }
            raise ApiError("cycle_unavailable", "this process has no open cycle; retry shortly", 503,
                           headers={"Retry-After": "1"})
        with state.lock, self.db.session() as session:
            process = session.get(Process, process_id)
            config = self.config(session, process.id)
            now = utcnow()
            state.requests += 1
            existing = session.scalar(
                select(Assignment).where(
                    Assignment.cycle_id == state.cycle_id, Assignment.worker_id == worker_id
                )
            )
            if existing is not None:
                if existing.status == "accepted":
                    # A retry after a lost answer: hand back the same place (one per worker/cycle).
                    return self._accepted_answer(session, process, state, existing)
                timeout = jittered(state.counts(now).seconds_until_next_cycle(config.max_diffs),
                                   self.rng)
                state.rejected["already_reported"] += 1
                return self._rejected_answer(process, "already_reported", timeout)
            last_sequence = session.scalar(
                select(func.max(Cycle.sequence))
                .join(Assignment, Assignment.cycle_id == Cycle.id)
                .where(Cycle.process_id == process.id, Assignment.worker_id == worker_id)
            )
            decision = decide(
                config,
                state.counts(now),
                speeds,
                cycles_since_last_assignment=(
                    None if last_sequence is None else state.sequence - last_sequence
                ),
                rng=self.rng,
            )
            if not decision.accepted:
                state.rejected[decision.reason] += 1
                return self._rejected_answer(process, decision.reason, decision.timeout)
            assignment = Assignment(
                cycle_id=state.cycle_id,
                worker_id=worker_id,
                request_key=secrets.token_urlsafe(32),
                status="accepted",
                assigned_at=now,
            )
            session.add(assignment)
            session.flush()
            state.accepted += 1
            return self._accepted_answer(session, process, state, assignment)

    @staticmethod
    def _rejected_answer(process: Process, reason: str, timeout: float) -> dict[str, Any]:
        return {
            "status": "rejected",
            "reason": reason,
            "timeout": timeout,
            "model": process.name,
            "version": process.version,
        }

    def _accepted_answer(self, session, process: Process, state: OpenCycle, assignment) -> dict:
        return {
            "status": "accepted",
            "request_key": assignment.request_key,
            "model": process.name,
            "version": process.version,
            "model_id": process.model.id,
            "plans": self.plan_ids(session, process.id),
            "client_config": process.client_config,
            "cycle": state.sequence,
            "checkpoint": state.checkpoint_number,
            "deadline": state.deadline.isoformat() + "Z",
            "timeout": max(0.0, round((state.deadline - utcnow()).total_seconds(), 3)),
        }

    # ----------------------------------------------------------------------------- assignments

    def find_assignment(self, session, worker_id: str, request_key: str) -> Assignment:
        """The worker's assignment for this request key, in a cycle that is still open."""
        assignment = session.scalar(select(Assignment).where(Assignment.request_key == request_key))
        if assignment is None or assignment.worker_id != worker_id:
            raise ApiError(
                "request_key_invalid",
                "request_key does not belong to this worker; ask for a cycle first",
                403,
            )
        if assignment.cycle.status != "open":
            raise ApiError(
                "cycle_closed",
                "the cycle of this assignment has closed; request a place in the current cycle",
                409,
            )
        return assignment

    # ----------------------------------------------------------------------------- reports

    def check_diff(self, spec: TensorSpec, data: bytes) -> dict[str, np.ndarray]:
        """Decode a diff and check it against the model: names, shapes, dtypes, finiteness."""
        try:
            diff = tensors.decode(data)
        except tensors.TensorFormatError as exc:
            raise ApiError("diff_malformed", f"diff is not a safetensors buffer: {exc}", 400) from None
        missing = sorted(set(spec) - set(diff))
        unexpected = sorted(set(diff) - set(spec))
        if missing or unexpected:
            raise ApiError(
                "diff_mismatch",
                "diff tensors do not match the model's parameters",
                400,
                details={"missing": missing, "unexpected": unexpected},
            )
        for name, (shape, dtype) in spec.items():
            if diff[name].shape != shape or diff[name].dtype != dtype:
                raise ApiError(
                    "diff_mismatch",
                    f"diff tensor {name!r} is {diff[name].dtype}{list(diff[name].shape)}, "
                    f"the model's is {dtype}{list(shape)}",
                    400,
                    details={"tensor": name},
                )
            if diff[name].dtype.kind == "f" and not np.isfinite(diff[name]).all():
                raise ApiError(
                    "diff_not_finite", f"diff tensor {name!r} holds NaN or infinity", 400,
                    details={"tensor": name},
                )
        return diff

    def report(
        self,
        worker_id: str,
        request_key: str,
        diff_bytes: bytes,
        num_samples: int,
        metrics: Mapping[str, float] | None,
    ) -> dict[str, Any]:
        """Store a report durably, fold it into the cycle's sum, close the cycle at its goal."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not (
            1 <= num_samples <= MAX_NUM_SAMPLES
        ):
            raise ApiError("num_samples_invalid", "num_samples must be a positive integer", 400)
        metrics = check_metrics(metrics)
        with self.db.session() as session:
            assignment = self.find_assignment(session, worker_id, request_key)
            process_id = assignment.cycle.process_id
            spec = self.spec(session, process_id)
            goal = self.config(session, process_id).max_diffs
        state = self._open.get(process_id)
        if state is None or state.cycle_id != assignment.cycle_id:
            raise ApiError("cycle_closed", "the cycle of this assignment has closed", 409)
        diff = run_off_hub(self.check_diff, spec, diff_bytes)
        with state.lock:
            with self.db.session() as session:
                # Re-read under the cycle lock: the cycle may have closed, or a twin request may
                # have reported, while the diff was being checked.
                assignment = session.get(Assignment, assignment.id, with_for_update=True)
                if session.get(Cycle, assignment.cycle_id).status != "open":
                    raise ApiError("cycle_closed", "the cycle of this assignment has closed", 409)
                if assignment.status != "accepted":
                    raise ApiError(
                        "report_duplicate",
                        "this assignment already reported; one report per assignment",
                        409,
                    )
                assignment.status = "reported"
                assignment.reported_at = utcnow()
                assignment.num_samples = num_samples
                assignment.metrics = metrics
                session.add(ReportDiff(assignment_id=assignment.id, data=bytes(diff_bytes)))
            # Committed: the report is durable. Fold it now (a restart would fold it from disk).
            fold_off_hub(state.running, diff, num_samples)
            state.fold_metrics(metrics, num_samples)
            if state.running.count >= goal:
                self.close_cycle(process_id, state.cycle_id, reason="goal")
        return {"status": "success", "cycle": state.sequence}

    # ----------------------------------------------------------------------------- closing

    def close_cycle(self, process_id: int, cycle_id: int, *, reason: str) -> None:
        """Close the open cycle: aggregate (goal, or deadline with quorum) or apply the quorum policy."""
        state = self._open.get(process_id)
        if state is None or state.cycle_id != cycle_id:
            return
        with state.lock:
            if self._open.get(process_id) is not state:
                return  # closed meanwhile by another path (goal vs. deadline)
            with self.db.session() as session:
                config = self.config(session, process_id)
                cycle = session.get(Cycle, cycle_id, with_for_update=True)
                if cycle.status != "open":
                    return
                now = utcnow()
                quorum = state.running.count >= config.min_diffs
                if reason == "deadline" and not quorum and config.quorum_policy == "extend":
                    extension = config.extend_seconds or config.cycle_length
                    cycle.deadline = now + timedelta(seconds=extension)
                    state.deadline = cycle.deadline
                    log.info(
                        "cycle %s of process %s missed its quorum (%d of %d reports): "
                        "deadline extended by %.1f s",
                        cycle.sequence, process_id, state.running.count, config.min_diffs, extension,
                    )
                    self._arm(state)
                    return
                started = time.perf_counter()
                checkpoint_number = cycle.checkpoint_number
                if quorum:
                    checkpoint_number = self._aggregate(session, process_id, cycle, config, state)
                    cycle.status = "completed"
                else:
                    cycle.status = "abandoned"
                    log.info(
                        "cycle %s of process %s abandoned at its deadline with %d of %d reports",
                        cycle.sequence, process_id, state.running.count, config.min_diffs,
                    )
                dropped = session.execute(
                    update(Assignment)
                    .where(Assignment.cycle_id == cycle_id, Assignment.status == "accepted")
                    .values(status="dropped")
                ).rowcount
                cycle.closed_at = now
                cycle.summary = {
                    "reason": reason,
                    "accepted": state.accepted,
                    "reported": state.running.count,
                    "dropped": dropped,
                    "rejected": dict(state.rejected),
                    "num_samples": state.running.total_samples,
                    "client_metrics": state.weighted_metrics(),
                    "aggregation_seconds": round(time.perf_counter() - started, 6),
                    "checkpoint": checkpoint_number,
                }
                # The diffs are folded into the checkpoint; keeping them would only grow the database.
                session.execute(
                    delete(ReportDiff).where(
                        ReportDiff.assignment_id.in_(
                            select(Assignment.id).where(Assignment.cycle_id == cycle_id)
                        )
                    )
                )
                next_cycle = self._open_next_cycle(session, process_id, cycle, config, checkpoint_number)
            if state.timer is not None and state.timer is not gevent.getcurrent():
                state.timer.kill(block=False)
            del self._open[process_id]
            log.info(
                "cycle %s of process %s %s (%s): %d reports, checkpoint %d",
                cycle.sequence, process_id, cycle.status, reason, state.running.count,
                checkpoint_number,
            )
        if next_cycle is not None:
            self._restore(next_cycle)

    def _aggregate(self, session, process_id: int, cycle: Cycle, config: ServerConfig, state) -> int:
        model_id = session.scalar(select(Model.id).where(Model.process_id == process_id))
        current = session.execute(
            select(Checkpoint.number, Checkpoint.data, Checkpoint.strategy_state).where(
                Checkpoint.model_id == model_id, Checkpoint.number == cycle.checkpoint_number
            )
        ).one()
        strategy = build_strategy(config.strategy)
        if getattr(strategy, "uses_hosted_plan", False):
            average = self._average_with_hosted_plan(session, process_id, cycle.id, strategy)
        else:
            average = state.running.average()

        def step() -> tuple[bytes, bytes | None]:
            params = tensors.decode(current.data)
            strategy_state = tensors.decode(current.strategy_state) if current.strategy_state else {}
            new_params, new_state = strategy.step(params, average, strategy_state)
            return (
                tensors.encode({name: new_params[name] for name in params}),
                tensors.encode(new_state) if new_state else None,
            )

        data, strategy_state = run_off_hub(step)
        number = current.number + 1
        session.add(
            Checkpoint(model_id=model_id, number=number, data=data, strategy_state=strategy_state)
        )
        return number

    def _average_with_hosted_plan(self, session, process_id: int, cycle_id: int, strategy) -> dict:
        """PyGrid parity: run the hosted averaging plan over the stored diffs, one at a time."""
        plan_file = session.scalar(
            select(Plan.data).where(Plan.process_id == process_id, Plan.kind == "averaging")
        )
        rows = session.execute(
            select(ReportDiff.data)
            .join(Assignment, Assignment.id == ReportDiff.assignment_id)
            .where(Assignment.cycle_id == cycle_id)
            .order_by(Assignment.reported_at, Assignment.id)
            .execution_options(yield_per=1)
        )
        averaging = strategy.averager(plan_file)
        average = None
        # Rows are read here on the hub (the connection is not thread-safe); each plan step, the
        # numpy work, runs in the pool.
        for count, (data,) in enumerate(rows):
            item = tensors.decode(data)
            average = (averaging.first(item) if count == 0
                       else run_off_hub(averaging.step, average, item, count))
        return average

    def _open_next_cycle(self, session, process_id, cycle, config, checkpoint_number) -> int | None:
        completed = session.scalar(
            select(func.count())
            .select_from(Cycle)
            .where(Cycle.process_id == process_id, Cycle.status == "completed")
        )
        if config.num_cycles is not None and completed >= config.num_cycles:
            session.get(Process, process_id).status = "finished"
            log.info("process %s finished its %d cycles", process_id, config.num_cycles)
            return None
        now = utcnow()
        next_cycle = Cycle(
            process_id=process_id,
            sequence=cycle.sequence + 1,
            checkpoint_number=checkpoint_number,
            started_at=now,
            deadline=now + timedelta(seconds=config.cycle_length),
            status="open",
        )
        session.add(next_cycle)
        session.flush()
        return next_cycle.id


def check_metrics(metrics: Any) -> dict[str, float] | None:
    """Client metrics: a small object of finite numbers (e.g. loss, accuracy)."""
    if metrics is None:
        return None
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise ApiError(
            "metrics_invalid", f"metrics must be an object of at most {MAX_METRICS} numbers", 400
        )
    checked = {}
    for key, value in metrics.items():
        if (
            not isinstance(key, str)
            or len(key) > 64
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
        ):
            raise ApiError(
                "metrics_invalid", f"metric {str(key)[:64]!r} must be a finite number", 400
            )
        checked[key] = float(value)
    return checked

