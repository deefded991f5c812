"""The cycle engine: hands out places in cycles, takes reports, closes cycles into checkpoints.

What lives where:
- the database is the truth: cycles (with their selection figures), assignments (with their
  leases), acknowledged reports (with their diff bytes), checkpoints and the strategy's state.
  Every change is committed before anyone is told about it: a report before the device hears
  "success", an extended deadline before the timer sleeps towards it.
- memory holds, per open cycle (`OpenCycle`), the running weighted sum of the diffs folded so
  far, the outstanding leases and one *watcher* greenlet; on a single Node also which workers
  hold a row in the cycle (and which are cooling down), so that a device turned away is decided
  without a query (`_place`). All of it is rebuilt from the database at start-up (`start`), so a
  `kill -9` loses no acknowledged report, lease or deadline, and no report is folded twice.

Who may do what (the rules that keep the engine race-free):
- every change to an open cycle happens under its `OpenCycle.lock`, and whoever takes the lock
  first checks `closed`: a request or report that waited for the lock while the cycle closed
  starts over on the next cycle instead of acting on the closed one;
- the watcher owns time: it sleeps until the deadline or the first lease expiry, then extends,
  closes or expires. Nobody kills it; it is woken (`wakeup`) and re-reads the state. (Killing a
  timer that was itself inside a database commit rolled the commit back on PostgreSQL.)
- a report that reaches the goal closes the cycle itself, before it is answered.

Liveness: devices turned away are told when the next cycle is expected (pace.py), a device may
long-poll (`wait`) and is answered the moment a place opens, and an accepted device that does not
report within its lease (leases.py) loses its place to another.

CPU work (validating and folding diffs, the strategy step) runs on gevent's thread pool so the
hub keeps serving other devices meanwhile.

Evaluation: an assignment's `task` is `train` or `evaluate` (federated_evaluation.py). Evaluation
assignments hold no training place, live only in the database (not in `OpenCycle`, not watched:
their lease is checked when they report or ask again) and their metrics-only reports never reach
the running sum. After a checkpoint is committed, `held_out` (held_out.py) scores it on the
process's evaluation set in the background.

Replicas (``--cluster``, PostgreSQL): several Node processes share one database and serve the same
models; the open cycle's figures are re-read under its row lock before every change, and only the
leader runs watchers. How, and why it stays exact, is in cluster.py. A single Node (``cluster`` is
None) never takes those paths.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from sqlalchemy import LargeBinary, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError

from ..db.database import Database
from ..db.models import Assignment, Checkpoint, Cycle, Model, Plan, Process, ReportDiff, utcnow
from .aggregation import RunningWeightedSum
from .checkpoints import write_next_checkpoint
from .cluster import POLL_SECONDS, Cluster
from .cycle_aggregate import aggregate_cycle, budget_exhausted, fold_rule
from .diff_encoding import decode_accepted, encoding_of
from .diff_files import (
    DiffFiles,
    DiffLocation,
    DiffUnreadable,
    read_diff,
    reported_diffs,
)
from .federated_evaluation import evaluation_place_left
from .figures import FigureWriter, save_figures
from .held_out import HeldOutScorer
from .leases import OBSERVATION_WINDOW, lease_seconds
from .off_hub import outcome, run_off_hub
from .open_cycle import Leases, MetricTally, OpenCycle
from .pace import typical_duration
from .place_writer import PlaceInFlight, PlaceWriter, QueuedPlace
from .privacy.accountant import load_in_background as load_accountant_in_background
from .report_batches import PendingReport, ReportBatches
from .report_checks import TensorSpec, check_diff
from .request_lookups import HostedProcess, RequestLookups
from .secagg_cycle import SecureCycles, mark_survivors_reported
from .secagg_store import delete_secure_rounds
from .selection import Speeds, decide, jittered
from .server_config import ServerConfig, parse_server_config
from .statuses import (
    AbandonReason,
    AssignmentStatus,
    AssignmentTask,
    CloseReason,
    CycleStatus,
    FinishReason,
    ProcessStatus,
)

log = logging.getLogger("fedgrid.node.cycles")

# Rejections that end by themselves when a place frees or the next cycle opens: a long-polling
# device is held for these. (Speed gates and random selection do not change by waiting.)
WAITABLE_REASONS = frozenset({"cycle_full", "already_reported", "worker_cooling_down"})
# A paused process tells devices to ask again within this many seconds (or a cycle length, if
# shorter), so a resume is noticed soon without devices polling a long pause.
PAUSED_RETRY_SECONDS = 30.0
CYCLE_DURATION_WINDOW = 10  # recent completed cycles that pace steering looks at
WATCHER_RETRY_SECONDS = 1.0  # after a failed close (database unreachable), try again this soon
# Replicas: a held long-poll decides again at least this often, in case a wake-up from another
# replica was lost (a notification is an optimisation; the database is the truth).
CLUSTER_LONG_POLL_RECHECK_SECONDS = 5.0

_WAIT = object()  # `_try_place` answers: hold the long-poll until something changes
_RETRY = object()  # the cycle closed while we waited for its lock: look again at once


def _iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


class _Attempt:
    """One cycle-request, possibly tried several times while it long-polls."""

    def __init__(self, wait: float, on_place: tuple[Any, Callable[[], None]] | None) -> None:
        self.give_up = time.monotonic() + wait
        self.on_place = on_place
        self.counted = False  # the request is counted once, in the first cycle it reaches
        self.unsaved: dict[int, OpenCycle] = {}  # cycles whose figures it changed, to commit
        # A single Node commits a place without waiting for the disk (the cycle's lock is not
        # held across a flush): set once it did, so the answer waits for `durable`.
        self.wrote = False

    @property
    def may_wait(self) -> bool:
        return time.monotonic() < self.give_up

    def seconds_left(self) -> float:
        return max(0.0, self.give_up - time.monotonic())

    def count_in(self, state: OpenCycle) -> None:
        """Count the request in `state`'s figures, once however often it is tried."""
        if not self.counted:
            self.counted = True
            state.requests += 1
            self.unsaved[state.cycle_id] = state


class _SessionOnDemand:
    """A session opened at its first use, committed (or rolled back) at the end like
    `Database.session`: a request decided from memory opens none (an empty session cost about a
    tenth of a rejection's time on the hub)."""

    def __init__(self, open_session: Callable[[], Any]) -> None:
        self._open = open_session
        self._context = None
        self._session = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._context = self._open()
            self._session = self._context.__enter__()
        return getattr(self._session, name)

    def __enter__(self) -> _SessionOnDemand:
        return self

    def __exit__(self, *exc_info) -> bool:
        return bool(self._context is not None and self._context.__exit__(*exc_info))


class CycleEngine:
    def __init__(self, db: Database, *, rng: random.Random | None = None,
                 diff_dir: Path | None = None) -> None:
        self.db = db
        # Where reports' diffs go (diff_files.py): per-cycle files for a single Node; the
        # database (report_diffs) without a directory, as replicas need.
        self.diff_files = DiffFiles(diff_dir) if diff_dir is not None else None
        self.rng = rng or random.Random()
        self._open: dict[int, OpenCycle] = {}  # process_id -> its open cycle
        # A single Node's outstanding training places by request key: a report is matched to its
        # place from memory, without a query (replicas' memory may be stale: they ask the
        # database). Entries leave with their cycle.
        self._places: dict[str, OpenCycle] = {}
        self._reporting: dict[str, gevent.event.Event] = {}  # request key -> its report, storing
        self._configs: dict[int, ServerConfig] = {}
        self._specs: dict[int, TensorSpec] = {}
        self._encodings: dict[int, str] = {}
        self._plan_ids: dict[int, dict[str, int]] = {}
        self._labels: dict[int, str] = {}
        self._hosted: dict[int, HostedProcess] = {}
        # Per process: seconds from acceptance to report of recent reports (for leases), and the
        # durations of recent completed cycles (for pace steering).
        self._report_times: dict[int, deque[float]] = {}
        self._cycle_durations: dict[int, deque[float]] = {}
        # Per process: set (and replaced) whenever a place may have opened, waking long-polls.
        self._changes: dict[int, gevent.event.Event] = {}
        self._figures = FigureWriter(db)
        # Per process: one-shot callbacks for the same moments (see `notify_once`).
        self._subscribers: dict[int, dict[Any, Callable[[], None]]] = {}
        # Scores each new checkpoint on the process's evaluation set, never on the cycle's path.
        self.held_out = HeldOutScorer(db)
        self.secure = SecureCycles(self)  # the rounds of cycles that aggregate securely
        # Set (before `start`) when this Node is one of several replicas on PostgreSQL.
        self.cluster: Cluster | None = None
        # A single Node's cycle-requests: workers, model names and ended processes, in memory.
        self.lookups = RequestLookups()
        # A single Node's new training places, written in shared transactions (place_writer.py).
        self._place_writer = PlaceWriter(db, placed=self._placed,
                                         given_back=lambda state: self._wake(state.process_id))

    @property
    def leading(self) -> bool:
        """Whether this process runs the watchers: always, unless it is a replica that is not
        the leader."""
        return self.cluster is None or self.cluster.leading

    # ----------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Restore every open cycle from the database and start its watcher."""
        with self.db.session() as session:
            cycle_ids = session.scalars(
                select(Cycle.id).where(Cycle.status == CycleStatus.OPEN)
            ).all()
        for cycle_id in cycle_ids:
            self._restore(cycle_id)
        if self.diff_files is not None:
            self.diff_files.sweep(set(cycle_ids))
        if self.cluster is None:
            self.held_out.start()
        else:
            self.cluster.start()  # the leader (maybe this replica) starts the watchers

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        self.held_out.stop()
        self.secure.stop()
        for state in list(self._open.values()):
            if state.watcher is not None:
                state.watcher.kill(block=False)
        self._open.clear()
        for changed in self._changes.values():
            changed.set()
        self._changes.clear()
        if self.diff_files is not None:
            self.diff_files.close()

    def _restore(self, cycle_id: int) -> OpenCycle:
        """Build a cycle's memory from the database, make it the open cycle, start its watcher."""
        with self.db.session() as session:
            cycle = session.get(Cycle, cycle_id)
            process = session.get(Process, cycle.process_id)
            self._load_history(session, cycle.process_id)
            config = self.config(session, cycle.process_id)
            rule = fold_rule(session, cycle.process_id, config)
            if config.differential_privacy is not None:
                load_accountant_in_background()  # not at the first close, on the hub
            # Coordinate-wise rules combine the stored reports at the close: no running sum.
            spec = self.spec(session, cycle.process_id) if rule.aggregator.streams else {}
            state = OpenCycle(
                cycle_id=cycle.id,
                process_id=cycle.process_id,
                model=process.name,
                version=process.version,
                sequence=cycle.sequence,
                checkpoint_number=cycle.checkpoint_number,
                label=self.label(session, cycle.process_id),
                started_at=cycle.started_at,
                deadline=cycle.deadline,
                cycle_length=config.cycle_length,
                running=RunningWeightedSum(spec),
                rule=rule,
                requests=cycle.requests or 0,
                rejected=Counter(cycle.rejected or {}),
                paused=cycle.process.status == ProcessStatus.PAUSED,
                # (After a restart the pause is counted from here: how long it lasted before the
                # restart is not kept.)
                paused_since=utcnow() if cycle.process.status == ProcessStatus.PAUSED else None,
            )
            assignments = session.execute(
                select(Assignment.id, Assignment.status, Assignment.expires_at,
                       Assignment.request_key, Assignment.worker_id, Assignment.assigned_at)
                .where(Assignment.cycle_id == cycle_id, Assignment.task == AssignmentTask.TRAIN)
            ).all()
            for assignment_id, status, expires_at, request_key, worker_id, assigned_at in (
                    assignments):
                state.accepted += 1
                if status == AssignmentStatus.ACCEPTED:
                    state.outstanding[assignment_id] = expires_at or cycle.deadline
                    state.request_keys[request_key] = (assignment_id, worker_id)
                    if self.cluster is None:
                        state.assigned_at[assignment_id] = assigned_at
                elif status == AssignmentStatus.EXPIRED:
                    state.expired += 1
            if self.cluster is None:
                self._load_request_memory(session, state, config)
            reports = reported_diffs(session, cycle_id)
            # Stored reports are folded again one at a time, each diff read by itself: memory
            # stays O(model) (test_restore_memory.py).
            encoding = self.diff_encoding(session, cycle.process_id)
            if self.cluster is not None:
                # A replica's copy: the leader's watcher folds the stored reports (`_refresh`).
                state.stored = {assignment_id for assignment_id, _, _ in reports}
                state.unfolded = len(reports)
                reports = []
            for assignment_id, num_samples, metrics in reports:
                try:
                    data = read_diff(session, self.diff_files, assignment_id)
                except DiffUnreadable as problem:
                    log.error("cycle %s of %s: the report of assignment %s is lost: %s",
                              cycle.sequence, process.name, assignment_id, problem)
                    if self.cluster is None:
                        self._reopen_unreadable(session, state, assignment_id)
                    continue
                state.fold_report(decode_accepted(data, encoding), num_samples, metrics,
                                  off_hub=False, assignment_id=assignment_id)
                del data
        if state.running.count:
            log.info("cycle %s of %s restored with %d stored reports", state.sequence,
                     state.label, state.running.count)
        existing = self._open.get(state.process_id)
        if (self.cluster is not None and existing is not None and not existing.closed
                and existing.cycle_id == cycle_id):
            return existing  # another greenlet loaded the same cycle meanwhile
        self._open[state.process_id] = state
        if self.cluster is None:
            self._places.update(dict.fromkeys(state.request_keys, state))
        self.secure.restore(state)  # a secure cycle's rounds, replayed from their messages
        if self.leading:
            # The watcher closes a restored cycle that had reached its goal before a crash at once.
            state.watcher = gevent.spawn(self._watch, state)
        return state

    @staticmethod
    def _reopen_unreadable(session, state: OpenCycle, assignment_id: int) -> None:
        """At a restart, a reported row whose diff cannot be read: open its place again, as
        accepted, until its lease's end. Either the machine stopped between the report's commit
        and its file's flush (the report was never answered: its device sends it again, and the
        resend is taken instead of being told `report_duplicate`), or the disk damaged an
        acknowledged diff (lost either way: its device has moved on, and the place expires)."""
        expires_at, request_key, worker_id, assigned_at = session.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id)
            .values(status=AssignmentStatus.ACCEPTED, reported_at=None, num_samples=None,
                    metrics=None, diff_offset=None, diff_length=None, diff_checksum=None)
            .returning(Assignment.expires_at, Assignment.request_key, Assignment.worker_id,
                       Assignment.assigned_at)
        ).one()
        state.outstanding[assignment_id] = expires_at or state.deadline
        state.assigned_at[assignment_id] = assigned_at
        state.request_keys[request_key] = (assignment_id, worker_id)

    @staticmethod
    def _load_request_memory(session, state: OpenCycle, config: ServerConfig) -> None:
        """What a single Node's cycle-requests decide from (`OpenCycle.workers`, `cooling`)."""
        state.workers = set(session.scalars(
            select(Assignment.worker_id).where(Assignment.cycle_id == state.cycle_id)))
        cooldown = config.do_not_reuse_workers_until_cycle
        if cooldown:
            # Only cycles within the cooldown matter: a worker that last trained earlier (or
            # never) is not cooling down, whether it is listed or not.
            state.cooling = dict(session.execute(
                select(Assignment.worker_id, func.max(Cycle.sequence))
                .join(Cycle, Cycle.id == Assignment.cycle_id)
                .where(Cycle.process_id == state.process_id,
                       Cycle.sequence < state.sequence,
                       Cycle.sequence > state.sequence - cooldown,
                       Assignment.task == AssignmentTask.TRAIN)
                .group_by(Assignment.worker_id)
            ).all())

    def _load_history(self, session, process_id: int) -> None:
        if process_id in self._report_times:
            return
        rows = session.execute(
            select(Assignment.assigned_at, Assignment.reported_at)
            .join(Cycle, Cycle.id == Assignment.cycle_id)
            .where(Cycle.process_id == process_id, Assignment.reported_at.is_not(None),
                   Assignment.task == AssignmentTask.TRAIN)
            .order_by(Assignment.reported_at.desc())
            .limit(OBSERVATION_WINDOW)
        ).all()
        self._report_times[process_id] = deque(
            reversed([(reported - assigned).total_seconds() for assigned, reported in rows]),
            maxlen=OBSERVATION_WINDOW,
        )
        cycles = session.execute(
            select(Cycle.started_at, Cycle.closed_at)
            .where(Cycle.process_id == process_id, Cycle.status == CycleStatus.COMPLETED)
            .order_by(Cycle.sequence.desc())
            .limit(CYCLE_DURATION_WINDOW)
        ).all()
        self._cycle_durations[process_id] = deque(
            reversed([(closed - started).total_seconds() for started, closed in cycles]),
            maxlen=CYCLE_DURATION_WINDOW,
        )

    def open_cycle(self, process_id: int) -> OpenCycle | None:
        """The process's open cycle in memory (process_control.py acts on it under its lock)."""
        if self.cluster is not None:
            return self._current(process_id)
        return self._open.get(process_id)

    def forget(self, process_id: int) -> None:
        """Drop everything held for a deleted process: its id may be given out again."""
        state = self._open.pop(process_id, None)
        if state is not None:
            self.secure.forget(state.cycle_id)
            state.closed = True
            self._forget_places(state)
            if self.diff_files is not None:
                self.diff_files.discard(state.cycle_id)
            state.outstanding.clear()
            state.wakeup.set()
        for cache in (self._configs, self._specs, self._encodings, self._plan_ids, self._labels,
                      self._hosted, self._report_times, self._cycle_durations):
            cache.pop(process_id, None)
        self.lookups.deleted(process_id)

    def _forget_places(self, state: OpenCycle) -> None:
        for request_key in state.request_keys:
            self._places.pop(request_key, None)

    def notify(self, process_id: int) -> None:
        self._notify(process_id)

    def _notify(self, process_id: int) -> None:
        """A place may have opened (new cycle, expired lease, training finished): wake long-polls
        and subscribers here and, for replicas, on every other replica too."""
        self._wake(process_id)
        if self.cluster is not None:
            try:
                with self.db.session() as session:
                    Cluster.announce(session, "places", process_id)
            except Exception as exc:  # a lost wake-up costs the others a recheck, nothing more
                log.warning("could not tell the other replicas about process %s: %s",
                            process_id, exc)

    def _wake(self, process_id: int) -> None:
        """Wake this process's held long-polls and tell the subscribers (WebSocket pushes), each
        once."""
        changed = self._changes.pop(process_id, None)
        if changed is not None:
            changed.set()
        for callback in self._subscribers.pop(process_id, {}).values():
            callback()

    def unsubscribe(self, key: Any) -> None:
        for subscribers in self._subscribers.values():
            subscribers.pop(key, None)

    # ----------------------------------------------------------------------------- the watcher

    def _watch(self, state: OpenCycle) -> None:
        """Sleep until the cycle's next deadline or lease expiry, act, repeat until it closes."""
        while not state.closed and self._watching(state):
            try:
                if self.cluster is not None and not self._refresh(state):
                    return  # closed by another replica: the next cycle has its own watcher
                if state.paused:
                    # Time stands still while paused: resume (or stop, or delete) wakes us.
                    state.wakeup.clear()
                    state.wakeup.wait(None if self.cluster is None else POLL_SECONDS)
                    continue
                goal = self._config_of(state.process_id).max_diffs
                now = utcnow()
                if state.reported >= goal:
                    self.close_cycle(state.process_id, state.cycle_id, reason=CloseReason.GOAL)
                elif now >= state.deadline:
                    self.close_cycle(state.process_id, state.cycle_id, reason=CloseReason.DEADLINE)
                elif (earliest := state.earliest_lease()) is not None and earliest <= now:
                    self._expire_leases(state)
                else:
                    state.wakeup.clear()
                    seconds = (state.next_wake() - now).total_seconds()
                    if self.cluster is not None:
                        seconds = min(seconds, POLL_SECONDS)  # places taken on other replicas
                    state.wakeup.wait(seconds)
            except Exception:  # a watcher has nobody to report to but the log; it must go on
                log.exception("the watcher of cycle %s failed; retrying", state.cycle_id)
                gevent.sleep(WATCHER_RETRY_SECONDS)

    def _watching(self, state: OpenCycle) -> bool:
        """Replicas: only the leader's watchers run; one that lost the lead (or was replaced)
        ends."""
        return self.cluster is None or (self.cluster.leading
                                        and state.watcher is gevent.getcurrent())

    def _expire_leases(self, state: OpenCycle) -> None:
        with state.lock:
            if state.closed or state.paused:
                return
            now = utcnow()
            due = [aid for aid, expires in state.outstanding.items() if expires <= now]
            if not due:
                return
            with self.db.session() as session:
                if self.cluster is not None:
                    if not self._sync(session, state) or state.paused:
                        return  # closed or paused on another replica: the watcher re-reads it
                    due = [aid for aid, expires in state.outstanding.items() if expires <= now]
                    if not due:
                        return
                session.execute(
                    update(Assignment)
                    .where(Assignment.id.in_(due), Assignment.status == AssignmentStatus.ACCEPTED)
                    .values(status=AssignmentStatus.EXPIRED)
                )
            for assignment_id in due:
                del state.outstanding[assignment_id]
                state.assigned_at.pop(assignment_id, None)
            state.expired += len(due)
        log.info("cycle %s of %s: %d assignment(s) did not report within their lease; places "
                 "freed", state.sequence, state.label, len(due))
        self._notify(state.process_id)

    # ----------------------------------------------------------------------------- replicas

    def _sync(self, session, state: OpenCycle, *, lock: bool = True) -> bool:
        """Replicas: re-read the open cycle's figures from the database into `state`, taking
        the cycle's row lock (held until `session` commits) unless ``lock`` is False. False when
        the cycle is no longer open (closed or deleted on another replica)."""
        query = (select(Cycle.status, Cycle.deadline, Cycle.requests, Cycle.rejected,
                        Process.status)
                 .join(Process, Process.id == Cycle.process_id)
                 .where(Cycle.id == state.cycle_id))
        if lock:
            query = query.with_for_update(of=Cycle)
        row = session.execute(query).one_or_none()
        if row is None or row[0] != CycleStatus.OPEN:
            return False
        _, state.deadline, requests, rejected, process_status = row
        state.requests = requests or 0
        state.rejected = Counter(rejected or {})
        state.paused = process_status == ProcessStatus.PAUSED
        assignments = session.execute(
            select(Assignment.id, Assignment.status, Assignment.expires_at)
            .where(Assignment.cycle_id == state.cycle_id, Assignment.task == AssignmentTask.TRAIN)
        ).all()
        state.outstanding = Leases({aid: expires or state.deadline
                                    for aid, status, expires in assignments
                                    if status == AssignmentStatus.ACCEPTED})
        state.expired = sum(1 for _, status, _ in assignments
                            if status == AssignmentStatus.EXPIRED)
        state.accepted = max(state.accepted, len(assignments))
        state.stored = {aid for aid, status, _ in assignments
                        if status == AssignmentStatus.REPORTED}
        state.unfolded = len(state.stored - state.folded)
        return True

    def _reread_figures(self, state: OpenCycle) -> dict[str, Any]:
        """Replicas: the open cycle's figures as every replica made them, for the cycles listing
        and the dashboards (a copy is otherwise as of this replica's last change to it)."""
        with state.lock:
            if state.closed:
                return {}
            with self.db.session() as session:
                if not self._sync(session, state, lock=False):
                    return {}
                reported = session.execute(
                    select(Assignment.num_samples, Assignment.metrics)
                    .where(Assignment.cycle_id == state.cycle_id,
                           Assignment.task == AssignmentTask.TRAIN,
                           Assignment.status == AssignmentStatus.REPORTED)
                ).all()
        # Counted from the stored reports, not from this copy's folds (which may lag).
        tally = MetricTally()
        for num_samples, metrics in reported:
            tally.add(metrics, num_samples or 0)
        figures = state.figures()
        figures.update(num_samples=sum(n or 0 for n, _ in reported),
                       client_metrics=tally.means())
        return figures

    def _catch_up(self, session, state: OpenCycle) -> None:
        """Fold the stored reports `state` has not folded yet (stored by other replicas, or
        before this replica led), in the order they were acknowledged."""
        missing = state.stored - state.folded
        if not missing:
            return
        encoding = self.diff_encoding(session, state.process_id)
        reports = session.execute(
            select(Assignment.id, Assignment.num_samples, Assignment.metrics)
            .where(Assignment.id.in_(sorted(missing)))
            .order_by(Assignment.reported_at, Assignment.id)
        ).all()
        for assignment_id, num_samples, metrics in reports:
            try:
                data = read_diff(session, self.diff_files, assignment_id)
            except DiffUnreadable:
                continue
            state.fold_report(decode_accepted(data, encoding), num_samples, metrics,
                              off_hub=True, assignment_id=assignment_id)
            del data
        state.unfolded = len(state.stored - state.folded)

    def _refresh(self, state: OpenCycle) -> bool:
        """The leader's watcher: re-read its cycle and fold what other replicas stored. False
        when the cycle was closed elsewhere (the current one is loaded instead)."""
        with state.lock:
            if state.closed:
                return False
            with self.db.session() as session:
                if self._sync(session, state, lock=False):
                    self._catch_up(session, state)
                    return True
        self._moved(state)
        return False

    def _ready_to_close(self, session, state: OpenCycle, reason: CloseReason) -> bool:
        """Replicas, under the cycle's lock, before a close: re-read the cycle under its row lock,
        then fold every stored report, so the close aggregates all that were acknowledged and
        nothing twice. False when there is nothing to close (any more)."""
        if not self._sync(session, state):
            gevent.spawn(self._moved, state)  # after this lock is released
            return False
        if state.paused and reason != CloseReason.STOPPED:
            return False
        if reason == CloseReason.DEADLINE and utcnow() < state.deadline:
            return False  # a resume elsewhere gave it a fresh deadline
        self._catch_up(session, state)
        return True

    def _moved(self, state: OpenCycle) -> None:
        """Replicas: `state`'s cycle is no longer open in the database; load the current one."""
        with state.lock:
            state.closed = True
            state.outstanding.clear()
            state.wakeup.set()
        if self._open.get(state.process_id) is state:
            del self._open[state.process_id]
        self._current(state.process_id)
        self._wake(state.process_id)

    def _current(self, process_id: int) -> OpenCycle | None:
        """Replicas: this replica's copy of the process's open cycle, loaded if it has none or
        an outdated one; None when the process has no open cycle."""
        with self.db.session() as session:
            cycle_id = session.scalar(select(Cycle.id).where(Cycle.process_id == process_id,
                                                            Cycle.status == CycleStatus.OPEN))
        state = self._open.get(process_id)
        if state is not None and not state.closed and state.cycle_id == cycle_id:
            return state
        if state is not None and self._open.get(process_id) is state:
            del self._open[process_id]
            state.closed = True
            state.wakeup.set()
        if cycle_id is None:
            return None
        return self._restore(cycle_id)

    def become_leader(self) -> None:
        """Replicas: this replica now runs the watchers (cluster.py)."""
        self.reconcile()
        self.held_out.start()

    def step_down(self) -> None:
        """Replicas: another replica may lead now; this one's watchers end."""
        for state in list(self._open.values()):
            state.watcher = None
            state.wakeup.set()
        # (A held-out scoring under way finishes: killed mid-query, it would leave its database
        # connection broken. The next leader scores what is left unscored.)

    def reconcile(self) -> None:
        """The leader, every second or so: a watcher for every open cycle in the database, those
        hosted or opened on other replicas included."""
        with self.db.session() as session:
            open_cycles = session.execute(
                select(Cycle.id, Cycle.process_id).where(Cycle.status == CycleStatus.OPEN)
            ).all()
        for cycle_id, process_id in open_cycles:
            self._adopt(process_id, cycle_id)

    def _adopt(self, process_id: int, cycle_id: int | None = None) -> None:
        state = self._open.get(process_id)
        if state is None or state.closed or (cycle_id is not None and state.cycle_id != cycle_id):
            state = self._current(process_id)
        if state is not None and self.leading and (state.watcher is None or state.watcher.dead):
            state.watcher = gevent.spawn(self._watch, state)

    def announced(self, kind: str, process_id: int) -> None:
        """Replicas: another replica (or this one) announced a change to `process_id`."""
        state = self._open.get(process_id)
        if state is not None:
            state.wakeup.set()  # the leader's watcher folds a report, or re-reads its cycle
        if kind != "report":
            self._wake(process_id)  # places may have opened: held long-polls decide again
        if self.leading and (state is None or state.watcher is None):
            gevent.spawn(self._adopt, process_id)  # hosted, or reopened, on another replica

    def wake_all(self) -> None:
        """Replicas: after a gap in notifications, everyone waiting decides again."""
        for process_id in list(self._changes) + list(self._subscribers):
            self._wake(process_id)
        for state in list(self._open.values()):
            state.wakeup.set()

    # ----------------------------------------------------------------------------- lookups

    def config(self, session, process_id: int) -> ServerConfig:
        """The process's parsed server_config (it never changes once hosted, so it is cached)."""
        if process_id not in self._configs:
            process = session.get(Process, process_id)
            self._configs[process_id] = parse_server_config(process.server_config)
        return self._configs[process_id]

    def label(self, session, process_id: int) -> str:
        """How logs name a process: its model's name and version, then the id an operator finds
        in the API (a bare "process 6" sent people to the database to learn which model it was)."""
        if process_id not in self._labels:
            process = session.get(Process, process_id)
            self._labels[process_id] = f"{process.name} {process.version} (process {process_id})"
        return self._labels[process_id]

    def _config_of(self, process_id: int) -> ServerConfig:
        if process_id in self._configs:
            return self._configs[process_id]
        with self.db.session() as session:
            return self.config(session, process_id)

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

    def diff_encoding(self, session, process_id: int) -> str:
        """How the process's devices encode their diffs (client_config; fixed once hosted)."""
        if process_id not in self._encodings:
            process = session.get(Process, process_id)
            self._encodings[process_id] = encoding_of(process.client_config)
        return self._encodings[process_id]

    def plan_ids(self, session, process_id: int) -> dict[str, int]:
        """Client plan name -> id; fixed once hosted, so cached like the config."""
        if process_id not in self._plan_ids:
            rows = session.execute(
                select(Plan.id, Plan.name).where(Plan.process_id == process_id, Plan.kind == "client")
            ).all()
            self._plan_ids[process_id] = {name: plan_id for plan_id, name in rows}
        return self._plan_ids[process_id]

    def hosted(self, session, process_id: int) -> HostedProcess:
        """What an accepted answer says about the process (fixed once hosted, so cached: an
        acceptance reads no process or model row)."""
        if process_id not in self._hosted:
            process = session.get(Process, process_id)
            self._hosted[process_id] = HostedProcess(
                process_id, process.name, process.version, process.model.id,
                process.client_config)
        return self._hosted[process_id]

    def typical_cycle_seconds(self, process_id: int) -> float | None:
        return typical_duration(self._cycle_durations.get(process_id, ()))

    def lease_seconds(self, config: ServerConfig, process_id: int) -> float:
        return lease_seconds(config.assignment_lease, config.cycle_length,
                             self._report_times.get(process_id, ()))

    def cycle_metrics(self, cycle: Cycle) -> dict[str, Any]:
        """A cycle's figures: from its summary once closed, live from memory while open."""
        metrics: dict[str, Any] = {
            "sequence": cycle.sequence,
            "status": cycle.status,
            "checkpoint": cycle.checkpoint_number,
            "started_at": _iso(cycle.started_at),
            "deadline": _iso(cycle.deadline),
            "closed_at": _iso(cycle.closed_at) if cycle.closed_at else None,
        }
        state = self._open.get(cycle.process_id)
        if (self.cluster is not None and cycle.status == CycleStatus.OPEN
                and (state is None or state.cycle_id != cycle.id)):
            state = self._current(cycle.process_id)  # opened, or hosted, by another replica
        if cycle.status == CycleStatus.OPEN and state is not None and state.cycle_id == cycle.id:
            metrics.update(state.figures())
            if self.cluster is not None:
                metrics.update(self._reread_figures(state))
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
            status=CycleStatus.OPEN,
        )
        session.add(cycle)
        return cycle

    def track_hosted(self, process_id: int) -> None:
        """After the hosting transaction committed: start watching its first cycle (replicas:
        the leader starts it when told, see `announced`)."""
        self.lookups.hosted()
        with self.db.session() as session:
            cycle_id = session.scalar(
                select(Cycle.id).where(Cycle.process_id == process_id,
                                       Cycle.status == CycleStatus.OPEN)
            )
        self._restore(cycle_id)
        self._notify(process_id)

    # ----------------------------------------------------------------------------- selection

    def request_cycle(self, worker_id: str, process_id: int, speeds: Speeds, *,
                      wait: float = 0.0,
                      on_place: tuple[Any, Callable[[], None]] | None = None,
                      gone: gevent.event.Event | None = None) -> dict[str, Any]:
        """Accept the worker into the open cycle, or say when to come back (`timeout`, seconds).

        With `wait` > 0 (a long-poll), a rejection that ends by itself (`WAITABLE_REASONS`, or
        no open cycle yet) is held for up to `wait` seconds and the request decided again each
        time a place may have opened; only the final answer is counted as a rejection.

        `on_place` (`(key, callback)`, WebSocket pushes): if the final answer is such a rejection,
        `callback` (which must not block) is called once, the next time a place may open. It is
        registered under the cycle's lock with the rejection, so no opening falls in between.
        One subscription per key and process; `unsubscribe(key)` drops them.

        `gone` (WebSocket): set when the caller left; a held long-poll ends at once, unanswered
        (its answer would go nowhere), instead of taking a place nobody would use.
        """
        attempt = _Attempt(wait, on_place)
        while True:
            # Taken before deciding, so a change that happens while we decide still wakes us.
            changed = self._changes.setdefault(process_id, gevent.event.Event())
            answer = self._try_place(worker_id, process_id, speeds, attempt)
            if isinstance(answer, PlaceInFlight):
                answer.wait()  # this worker's earlier request is being placed: then decide again
                continue
            if isinstance(answer, QueuedPlace):
                # Taken under the lock, answered once its batch is committed and on disk.
                answer = answer.settled()
                if answer is None:  # its cycle closed before it was written
                    continue
                break
            if answer is _RETRY:
                continue
            if answer is not _WAIT:
                break
            seconds = attempt.seconds_left()
            if self.cluster is not None:
                seconds = min(seconds, CLUSTER_LONG_POLL_RECHECK_SECONDS)
            if gone is None:
                changed.wait(seconds)
                continue
            gevent.wait([changed, gone], timeout=seconds, count=1)
            if gone.is_set():
                answer = {"status": "rejected", "reason": "cycle_full", "timeout": 1.0}
                break
        if attempt.unsaved:
            # Outside the cycle's lock, so that concurrent requests share one commit.
            self._figures.save(list(attempt.unsaved.values()))
        if attempt.wrote and self.cluster is None:
            self.db.durable()  # a place is answered only once on disk (one flush for many)
        return answer

    def _try_place(self, worker_id: str, process_id: int, speeds: Speeds, attempt: _Attempt):
        state = self._open.get(process_id)
        if state is None:
            return self._no_open_cycle(process_id, attempt)
        with state.lock:
            if state.closed:
                return _RETRY
            if self.cluster is not None:
                return self._try_place_replicated(worker_id, process_id, speeds, attempt, state)
            if _past_deadline(state, self._config_of(process_id), utcnow()):
                return self._over(state, attempt)
            # Group commit: what this writes is committed without waiting for the disk, and
            # `request_cycle` waits for it (`durable`, shared) after the lock is released.
            with _SessionOnDemand(lambda: self.db.session(wait_for_disk=False)) as session:
                return self._place(session, worker_id, process_id, speeds, attempt, state)

    def _try_place_replicated(self, worker_id: str, process_id: int, speeds: Speeds,
                              attempt: _Attempt, state: OpenCycle):
        """`_try_place` for replicas: on the figures re-read under the cycle's row lock, and with
        the figures written in the same transaction (another replica may count the next one)."""
        with self.db.session() as session:
            if self._sync(session, state):
                if _past_deadline(state, self._config_of(process_id), utcnow()):
                    answer = self._over(state, attempt)
                else:
                    answer = self._place(session, worker_id, process_id, speeds, attempt, state)
                if attempt.unsaved.pop(state.cycle_id, None) is not None:
                    save_figures(session, state)
                return answer
        self._moved(state)
        return _RETRY

    def _place(self, session, worker_id: str, process_id: int, speeds: Speeds, attempt: _Attempt,
               state: OpenCycle):
        """Decide one request. A single Node turns devices away from memory: the session is used
        only when the worker has a row in this cycle, or to accept."""
        config = self.config(session, process_id)
        now = utcnow()
        attempt.count_in(state)
        counts = state.counts(now, self.typical_cycle_seconds(process_id))
        if worker_id in state.placing:
            return PlaceInFlight(state.placing[worker_id])
        existing = None
        if self.cluster is not None or worker_id in state.workers:
            existing = session.scalar(
                select(Assignment).where(
                    Assignment.cycle_id == state.cycle_id, Assignment.worker_id == worker_id
                )
            )
        if (existing is not None and existing.task == AssignmentTask.EVALUATE
                and existing.status == AssignmentStatus.ACCEPTED
                and existing.expires_at <= now):
            # An evaluation's lease is checked here, not by the watcher (it holds no
            # training place): the device may be decided afresh.
            existing.status = AssignmentStatus.EXPIRED
            attempt.wrote = True
        if existing is not None and existing.status == AssignmentStatus.ACCEPTED:
            # A retry after a lost answer: hand back the same place (one per worker/cycle).
            return self._accepted_answer(session, self.hosted(session, process_id), state,
                                         existing.request_key,
                                         existing.expires_at or state.deadline, existing.task,
                                         now)
        if state.paused:  # (a place already held is handed back above: it may report)
            return self._paused_answer(process_id, config, state, attempt)
        if existing is not None and existing.status != AssignmentStatus.EXPIRED:
            reason = "already_reported"
            timeout = jittered(counts.seconds_until_next_cycle(config.max_diffs), self.rng)
        else:
            # Never assigned here, or its lease ran out (a device that restarted): decide.
            last_sequence = None
            if config.do_not_reuse_workers_until_cycle and self.cluster is None:
                last_sequence = state.cooling.get(worker_id)
            elif config.do_not_reuse_workers_until_cycle:
                # (Only a cooldown asks when the worker last trained: a query per request saved
                # for the usual setting, 0.)
                last_sequence = session.scalar(
                    select(func.max(Cycle.sequence))
                    .join(Assignment, Assignment.cycle_id == Cycle.id)
                    .where(Cycle.process_id == process_id, Assignment.worker_id == worker_id,
                           Cycle.sequence < state.sequence,
                           Assignment.task == AssignmentTask.TRAIN)
                )
            decision = decide(
                config, counts, speeds,
                cycles_since_last_assignment=(
                    None if last_sequence is None else state.sequence - last_sequence
                ),
                rng=self.rng,
            )
            if decision.accepted:
                return self._accept(session, self.hosted(session, process_id), config, state,
                                    worker_id, existing, now, attempt)
            if decision.reason == "cycle_full" and evaluation_place_left(
                    session, config, state.cycle_id, state.sequence, now):
                # Every training place is taken: this device evaluates the checkpoint.
                return self._accept(session, self.hosted(session, process_id), config, state,
                                    worker_id, existing, now, attempt,
                                    task=AssignmentTask.EVALUATE)
            reason, timeout = decision.reason, decision.timeout
        if reason in WAITABLE_REASONS and attempt.may_wait:
            return _WAIT
        if reason in WAITABLE_REASONS and attempt.on_place is not None:
            key, callback = attempt.on_place
            self._subscribers.setdefault(process_id, {})[key] = callback
        state.rejected[reason] += 1
        attempt.unsaved[state.cycle_id] = state
        return self._rejected_answer(state, reason, timeout)

    def _over(self, state: OpenCycle, attempt: _Attempt):
        """The cycle's deadline passed and its watcher, perhaps queued behind us on the lock,
        has not closed it yet: no place in it, and no database work that would hold up the
        close. A long-poll waits for the next cycle; others come back in about a second."""
        if attempt.may_wait:
            return _WAIT
        attempt.count_in(state)
        state.rejected["cycle_full"] += 1
        attempt.unsaved[state.cycle_id] = state
        return {"status": "rejected", "reason": "cycle_full", "timeout": jittered(1.0, self.rng),
                "model": state.model, "version": state.version}

    def _paused_answer(self, process_id: int, config: ServerConfig, state: OpenCycle,
                       attempt: _Attempt):
        """A paused process turns everyone away at once, held long-polls included (holding them
        for a pause of unknown length would only tie up connections). Devices ask again within a
        cycle length (at most PAUSED_RETRY_SECONDS); a WebSocket that asked for `notify` is
        pushed place-available at resume. Counted like any rejection, so the figures show it."""
        state.rejected["process_paused"] += 1
        attempt.unsaved[state.cycle_id] = state
        if attempt.on_place is not None:
            key, callback = attempt.on_place
            self._subscribers.setdefault(process_id, {})[key] = callback
        timeout = jittered(min(PAUSED_RETRY_SECONDS, config.cycle_length), self.rng)
        return self._rejected_answer(state, "process_paused", timeout)

    def _no_open_cycle(self, process_id: int, attempt: _Attempt):
        # No open cycle: all cycles are done, the process was stopped or deleted, or the first
        # cycle is being opened.
        if self.cluster is not None and self._current(process_id) is not None:
            return _RETRY  # hosted, or its next cycle opened, on another replica
        if self.cluster is None and (ended := self.lookups.ended(process_id)) is not None:
            return dict(ended)  # finished and stopped are final: only a delete ends them
        generation = self.lookups.generation
        with self.db.session() as session:
            process = session.get(Process, process_id)
            if process is None:
                raise ApiError("process_unknown", "this model is no longer hosted", 404)
            if process.status in (ProcessStatus.FINISHED, ProcessStatus.STOPPED):
                ended = {
                    "status": "rejected",
                    "reason": ("training_finished" if process.status == ProcessStatus.FINISHED
                               else "training_stopped"),
                    "model": process.name,
                    "version": process.version,
                }
                if self.cluster is None:
                    self.lookups.remember_ended(generation, process_id, ended)
                return dict(ended)
        if attempt.may_wait:
            return _WAIT
        raise ApiError("cycle_unavailable", "this process has no open cycle; retry shortly", 503,
                       headers={"Retry-After": "1"})

    def _accept(self, session, process: HostedProcess, config, state: OpenCycle, worker_id: str,
                existing, now, attempt: _Attempt, task: AssignmentTask = AssignmentTask.TRAIN):
        training = task == AssignmentTask.TRAIN
        lease = timedelta(seconds=self.lease_seconds(config, process.process_id))
        # An evaluation may outlive its cycle: the checkpoint it scores stays what it is.
        expires = min(state.deadline, now + lease) if training else now + lease
        if training and config.secure_aggregation is not None:
            expires = state.deadline  # a secure cohort, once fixed, keeps its places
        elif training and existing is None and self.cluster is None:
            # The usual place: taken in memory now, written with the others queued meanwhile.
            request_key = secrets.token_urlsafe(32)
            answer = self._accepted_answer(session, process, state, request_key, expires,
                                           AssignmentTask.TRAIN, now)
            attempt.unsaved.pop(state.cycle_id, None)  # (the figures ride along in its commit)
            place = QueuedPlace(worker_id, request_key, now, expires, answer)
            self._place_writer.queue(state, place)
            return place
        assignment = existing
        replaced_key = None
        if assignment is None:
            assignment = Assignment(cycle_id=state.cycle_id, worker_id=worker_id)
            session.add(assignment)
        else:
            replaced_key = existing.request_key  # no longer valid once the new one is given
            if existing.task == AssignmentTask.TRAIN:
                state.expired -= 1  # the same row takes a fresh place; its expiry no longer counts
        assignment.request_key = secrets.token_urlsafe(32)
        assignment.status = AssignmentStatus.ACCEPTED
        assignment.task = task
        assignment.assigned_at = now
        assignment.expires_at = expires
        save_figures(session, state)  # the figures ride along in the place's own commit
        session.flush()
        answer = self._accepted_answer(session, process, state, assignment.request_key, expires,
                                       task, now)
        session.commit()  # the place is committed before it is counted or announced
        attempt.wrote = True  # (and on disk before it is answered: `request_cycle`)
        attempt.unsaved.pop(state.cycle_id, None)
        state.workers.add(worker_id)
        state.request_keys.pop(replaced_key, None)
        self._places.pop(replaced_key, None)
        if training:  # an evaluation holds no training place: nothing for the watcher
            state.accepted += 1
            state.outstanding[assignment.id] = expires
            if self.cluster is None:
                state.assigned_at[assignment.id] = now
                state.request_keys[assignment.request_key] = (assignment.id, worker_id)
                self._places[assignment.request_key] = state
            state.wakeup.set()  # the watcher may need to wake for this lease
            self.secure.places_taken(state, config, self.spec(session, process.process_id))
        return answer

    @staticmethod
    def _rejected_answer(state: OpenCycle, reason: str, timeout: float) -> dict[str, Any]:
        return {
            "status": "rejected",
            "reason": reason,
            "timeout": timeout,
            "model": state.model,
            "version": state.version,
        }

    def _placed(self, state: OpenCycle, place: QueuedPlace, assignment_id: int) -> None:
        """A queued place's row is committed (under the cycle's lock): it counts as `_accept`'s
        places do from now on."""
        state.workers.add(place.worker_id)
        state.accepted += 1
        state.outstanding[assignment_id] = place.expires_at
        state.assigned_at[assignment_id] = place.assigned_at
        state.request_keys[place.request_key] = (assignment_id, place.worker_id)
        self._places[place.request_key] = state
        state.wakeup.set()  # the watcher may need to wake for this lease

    def _accepted_answer(self, session, process: HostedProcess, state: OpenCycle,
                         request_key: str, expires: datetime, task: str,
                         now: datetime) -> dict:
        return {
            "status": AssignmentStatus.ACCEPTED.value,
            "request_key": request_key,
            "model": process.name,
            "version": process.version,
            "model_id": process.model_id,
            "plans": self.plan_ids(session, process.process_id),
            "client_config": process.client_config,
            "cycle": state.sequence,
            "checkpoint": state.checkpoint_number,
            "deadline": _iso(state.deadline),
            # Seconds left to report: the end of the lease (never after the deadline, except for
            # an evaluation, which may report after its cycle closed).
            "timeout": max(0.0, round((expires - now).total_seconds(), 3)),
            "report_by": _iso(expires),
            "task": task or AssignmentTask.TRAIN.value,
            **self._secure_settings(session, process.process_id, state),
        }

    def _secure_settings(self, session, process_id: int, state: OpenCycle) -> dict[str, Any]:
        """A secure cycle's parameters, which tell a device not to `report` but to run rounds;
        with differential privacy, the clip the device applies (the Node cannot: it sees only
        the sum) and the noise at the close is calibrated to (the cycle's rule's clip)."""
        config = self.config(session, process_id)
        settings = config.secure_aggregation
        if settings is None:
            return {}
        answer = settings.model_dump()
        if config.differential_privacy is not None:
            answer["clip_norm"] = state.rule.clip
        return {"secure_aggregation": answer}

    # ----------------------------------------------------------------------------- assignments

    def find_assignment(self, session, worker_id: str, request_key: str) -> Assignment:
        """The worker's assignment for this request key, in a cycle that is still open."""
        assignment = self._assignment_of(session, worker_id, request_key)
        if assignment.status == AssignmentStatus.EXPIRED:
            raise _expired()
        if assignment.task == AssignmentTask.EVALUATE:
            # Not bound to the cycle's close: the checkpoint it scores never changes.
            if _evaluation_lease_over(assignment):
                raise _expired()
            return assignment
        if assignment.status == AssignmentStatus.DROPPED or assignment.cycle.status != CycleStatus.OPEN:
            raise _cycle_closed()
        return assignment

    @staticmethod
    def _assignment_of(session, worker_id: str, request_key: str) -> Assignment:
        assignment = session.scalar(select(Assignment).where(Assignment.request_key == request_key))
        if assignment is None or assignment.worker_id != worker_id:
            raise _request_key_invalid()
        return assignment

    @staticmethod
    def _check_may_report(status: str) -> None:
        """Refuse a report by the assignment's own status first: a resend of a stored report is
        `report_duplicate` (it was counted) even after its cycle closed."""
        if status == AssignmentStatus.REPORTED:
            raise ApiError(
                "report_duplicate", "this assignment already reported; one report per assignment", 409
            )
        if status == AssignmentStatus.EXPIRED:
            raise _expired()
        if status != AssignmentStatus.ACCEPTED:
            raise _cycle_closed()

    # ----------------------------------------------------------------------------- reports

    def report(
        self,
        worker_id: str,
        request_key: str,
        diff_bytes: bytes | None,
        num_samples: int,
        metrics: Mapping[str, float] | None,
    ) -> dict[str, Any]:
        """Store a report durably, fold it into the cycle's sum, close the cycle at its goal.

        An evaluation assignment's report (metrics only) is stored and nothing else."""
        if self.cluster is not None:  # replicas: a twin's staging replaces the other's
            return self._report(worker_id, request_key, diff_bytes, num_samples, metrics)
        # One report per request key at a time: a twin sent while the first is being stored
        # (a client's retry, or a hostile device's hundred copies) waits for it, then finds it
        # counted (`report_duplicate`) or takes its place; it never writes its diff as well.
        while (twin := self._reporting.get(request_key)) is not None:
            twin.wait()
        done = self._reporting[request_key] = gevent.event.Event()
        try:
            return self._report(worker_id, request_key, diff_bytes, num_samples, metrics)
        finally:
            del self._reporting[request_key]
            done.set()

    def _report(self, worker_id: str, request_key: str, diff_bytes: bytes | None,
                num_samples: int, metrics: Mapping[str, float] | None) -> dict[str, Any]:
        state = self._places.get(request_key)
        place = state.request_keys.get(request_key) if state is not None else None
        if (place is not None and place[1] == worker_id and place[0] in state.outstanding
                and not state.closed):
            # An outstanding training place of an open cycle, from memory: what the query below
            # would find (the mark under the lock checks the row itself).
            if diff_bytes is None:
                raise _diff_missing()
            assignment_id, cycle_id, process_id = place[0], state.cycle_id, state.process_id
            spec, config, encoding = self._report_settings(process_id)
        else:
            answer = self._look_up_report(worker_id, request_key, diff_bytes, num_samples,
                                          metrics)
            if isinstance(answer, dict):
                return answer  # an evaluation's, stored
            assignment_id, cycle_id, process_id, spec, config, encoding = answer
        return self._report_training(assignment_id, cycle_id, process_id, spec, config,
                                     encoding, diff_bytes, num_samples, metrics)

    def _report_settings(self, process_id: int) -> tuple[TensorSpec, ServerConfig, str]:
        if (process_id in self._specs and process_id in self._configs
                and process_id in self._encodings):
            return (self._specs[process_id], self._configs[process_id],
                    self._encodings[process_id])
        with self.db.session() as session:
            return (self.spec(session, process_id), self.config(session, process_id),
                    self.diff_encoding(session, process_id))

    def _look_up_report(self, worker_id: str, request_key: str, diff_bytes: bytes | None,
                        num_samples: int, metrics: Mapping[str, float] | None):
        """The report's assignment from the database, refused by its status (or an
        evaluation's report stored: its answer)."""
        with self.db.session() as session:
            # One statement for what the report path needs (the ORM object and its lazily
            # loaded cycle were three round trips and most of the hub's time per report).
            found = session.execute(
                select(Assignment.id, Assignment.worker_id, Assignment.status, Assignment.task,
                       Assignment.cycle_id, Cycle.process_id)
                .join(Cycle, Cycle.id == Assignment.cycle_id)
                .where(Assignment.request_key == request_key)).one_or_none()
            if found is None or found.worker_id != worker_id:
                raise _request_key_invalid()
            self._check_may_report(found.status)
            if found.task == AssignmentTask.EVALUATE:
                return self._report_evaluation(session, session.get(Assignment, found.id),
                                               diff_bytes, num_samples, metrics)
            if diff_bytes is None:
                raise _diff_missing()
            return (found.id, found.cycle_id, found.process_id, self.spec(session, found.process_id),
                    self.config(session, found.process_id),
                    self.diff_encoding(session, found.process_id))

    def _report_training(self, assignment_id: int, cycle_id: int, process_id: int,
                         spec: TensorSpec, config: ServerConfig, encoding: str,
                         diff_bytes: bytes, num_samples: int,
                         metrics: Mapping[str, float] | None) -> dict[str, Any]:
        if config.secure_aggregation is not None:
            raise ApiError("secure_report_refused",
                           "this cycle aggregates securely: send the update through the "
                           "secagg events, never in the clear with report", 409)
        state = self._open.get(process_id)
        if self.cluster is not None and (state is None or state.cycle_id != cycle_id):
            state = self._current(process_id)  # this replica's copy is of an older cycle
        if state is None or state.cycle_id != cycle_id:
            raise _cycle_closed()
        check = partial(check_diff, spec, diff_bytes, num_samples, encoding)
        if self.cluster is not None:
            return self._report_replicated(state, config, assignment_id, run_off_hub(check),
                                           diff_bytes, num_samples, metrics)
        location = None
        if self.diff_files is None:  # (an engine made without a directory: tests)
            diff = run_off_hub(check)
        else:
            # The diff is checked and goes to disk first, beside other reports' and outside the
            # cycle's lock, so the lock covers only the decision and its share of one small
            # transaction (diff_files.py, report_batches.py). As received: an encoded diff stays
            # as small as it came (decode_accepted reads it).
            self._check_on_time(state, config, assignment_id, utcnow())
            if state.closed:  # (no yield from here to the append's opening of the file)
                raise _cycle_closed()
            try:
                location, diff = self.diff_files.append(cycle_id, diff_bytes, check)
            except OSError as failure:  # the disk is full or failing: nothing was stored
                log.error("cannot store a report of cycle %s of %s: %s", state.sequence,
                          state.label, failure)
                raise ApiError("storage_unavailable",
                               "the Node could not store this report on its disk; nothing was "
                               "kept: send it again later", 503) from None
        if state.reports is None:
            state.reports = ReportBatches(partial(self._store_reports, state))
        # The diff's flush to the disk runs beside its batch and the batch's own flush: the
        # answer waits for both, not for one after the other (two waits in a row, each shared
        # with the reports written meanwhile, were most of a report's time at 64 devices). A
        # stop of the machine in between is `_reopen_unreadable`'s case.
        on_disk = (gevent.spawn(outcome, self.diff_files.flush, cycle_id)
                   if location is not None else None)
        pending = PendingReport(assignment_id, num_samples, metrics, diff, location,
                                diff_bytes=diff_bytes if location is None else None)
        answer = state.reports.submit(pending)
        if pending.committed is not None:
            self.db.durable(since=pending.committed)  # acknowledged only once on disk
        if on_disk is not None and not (flushed := on_disk.get())[0]:
            # Counted, but not known to be on the disk: no `success`. The resend is told
            # `report_duplicate` (it is counted); the log says the disk is failing.
            log.error("cycle %s of %s: a report's diff could not be flushed to the disk: %s",
                      state.sequence, state.label, flushed[1])
            raise ApiError("storage_unavailable",
                           "the Node could not confirm this report on its disk", 503)
        return answer

    def _store_reports(self, state: OpenCycle, batch: list[PendingReport]) -> None:
        """Store a batch of a single Node's reports (report_batches.py): under the cycle's lock,
        decide each, mark those taken reported in one transaction, then fold them in one
        hand-off. Sets each report's outcome."""
        config = self._report_settings(state.process_id)[1]
        with state.lock:
            if state.closed:
                for report in batch:
                    report.outcome.set_exception(_cycle_closed())
                return
            # Before any database work: past the deadline, reports queued on this lock must not
            # hold up the watcher's close behind them.
            now = utcnow()
            # The batch shares `now` as its reported_at, and a restart folds the stored reports
            # by (reported_at, id): so the batch is taken and folded by assignment id.
            room = len(batch) if state.paused else config.max_diffs - state.reported
            taken = []
            for report in sorted(batch, key=lambda report: report.assignment_id):
                try:
                    self._check_on_time(state, config, report.assignment_id, now)
                    if len(taken) >= room:  # the goal is in: the cycle closes with those before
                        raise _cycle_closed()
                except ApiError as refusal:
                    report.outcome.set_exception(refusal)
                    continue
                taken.append(report)
            if not taken:
                return
            # SQLite commits on the hub's thread: there the lock is not held while the disk
            # flushes; each report's request waits for the flush, shared with the reports
            # committed meanwhile (`durable`), before its answer. PostgreSQL's commit waits for
            # the disk cooperatively: the batch's own commit is its flush, one round trip fewer
            # than a separate one, and the batch after forms while it runs.
            with self.db.connection(wait_for_disk=not self.db.is_sqlite) as connection:
                marked = self._mark_batch(connection, taken, now, state.assigned_at)
            if self.db.is_sqlite:
                # Its reports wait for a flush begun after this commit: the first to ask begins
                # one, the rest share it. (Each asking for "everything so far" once answered, the
                # rest, arriving while the first one's flush ran, waited for it and then for
                # another: two flushes in a row for most of a batch.)
                committed = self.db.flush_mark()
                for report, _ in marked:
                    report.committed = committed
            # Committed: fold them now (a restart would fold them from the database and file).
            times = self._report_times[state.process_id]
            for report, assigned_at in marked:
                state.outstanding.pop(report.assignment_id, None)
                state.assigned_at.pop(report.assignment_id, None)
                times.append((now - assigned_at).total_seconds())
            state.fold_reports([(report.diff, report.num_samples, report.metrics,
                                 report.assignment_id) for report, _ in marked])
            # Paused: the reports count, but the cycle closes only once resumed (its watcher).
            # The close comes before the answers: a device told its report made the goal finds
            # the next checkpoint.
            try:
                if state.reported >= config.max_diffs and not state.paused:
                    self.close_cycle(state.process_id, state.cycle_id, reason=CloseReason.GOAL)
            finally:
                for report, _ in marked:
                    report.outcome.set({"status": "success", "cycle": state.sequence})

    def _report_replicated(self, state: OpenCycle, config: ServerConfig, assignment_id: int,
                           diff, diff_bytes: bytes, num_samples: int,
                           metrics: Mapping[str, float] | None) -> dict[str, Any]:
        """`report` for replicas. The diff is staged first, in a transaction of its own, so the
        cycle's row lock covers only the decision (figures, status, notification), not the write
        of a megabyte (it held the lock ~30 ms per report: apps/node/benchmarks/replicas.py). A
        staged diff counts only once its assignment is marked reported under the lock; a refused
        report takes it back, and one left by a crash in between is deleted with the cycle's
        other diffs at its close (every read of stored reports asks for reported assignments)."""
        self._stage_diff(assignment_id, diff_bytes)
        committed = False
        try:
            with state.lock:
                if state.closed:
                    raise _cycle_closed()
                now = utcnow()
                with self.db.session() as session:
                    # The figures of every replica, under the cycle's row lock.
                    if not self._sync(session, state):
                        raise _cycle_closed()
                    if state.reported >= config.max_diffs and not state.paused:
                        raise _cycle_closed()  # the goal is in; the leader is closing it
                    self._check_on_time(state, config, assignment_id, now)
                    assigned_at = self._mark_reported(session.connection(), assignment_id, now,
                                                      num_samples, metrics)
                    Cluster.announce(session, "report", state.process_id)  # the leader folds it
                committed = True
                self._reported(state, config, assignment_id, now, assigned_at, diff, num_samples,
                               metrics)
        except ApiError as refusal:
            if not committed and refusal.code != "report_duplicate":
                self._unstage_diff(assignment_id)
            raise
        return {"status": "success", "cycle": state.sequence}

    def _stage_diff(self, assignment_id: int, diff_bytes: bytes) -> None:
        """Replicas: store the diff of an assignment still accepted (a resend after a crash
        replaces its own earlier staging; an acknowledged report's diff is never touched)."""
        still_accepted = (select(Assignment.id)
                          .where(Assignment.id == assignment_id,
                                 Assignment.status == AssignmentStatus.ACCEPTED)
                          .exists())
        staged = pg_insert(ReportDiff).from_select(
            ["assignment_id", "data"],
            select(literal(assignment_id), literal(bytes(diff_bytes), LargeBinary))
            .where(still_accepted))
        staged = staged.on_conflict_do_update(index_elements=[ReportDiff.assignment_id],
                                              set_={"data": staged.excluded.data},
                                              where=still_accepted)
        with self.db.session() as session:
            session.execute(staged)

    def _unstage_diff(self, assignment_id: int) -> None:
        with self.db.session() as session:
            session.execute(delete(ReportDiff).where(
                ReportDiff.assignment_id == assignment_id,
                ReportDiff.assignment_id.in_(select(Assignment.id).where(
                    Assignment.status != AssignmentStatus.REPORTED))))

    def _mark_batch(self, connection, taken: list[PendingReport], now: datetime,
                    known: Mapping[int, datetime]) -> list[tuple[PendingReport, datetime]]:
        """Mark a batch's reports reported (`_mark_reported`'s rule) in one statement run for
        every row (one round trip on PostgreSQL, in pipeline mode); the memory that let them into
        the batch says their rows are still accepted. Returns (report, assigned_at) of those
        marked, assigned_at from `known` where it has them; a report whose row no longer may
        report has its refusal set."""
        if len(taken) > 1:
            rows = [self._mark_parameters(report.assignment_id, now, report.num_samples,
                                          report.metrics, report.location) for report in taken]
            if connection.execute(_MARK_MANY, rows).rowcount == len(taken):
                ids = [report.assignment_id for report in taken]
                if all(assignment_id in known for assignment_id in ids):
                    assigned = known
                else:
                    assigned = dict(connection.execute(_ASSIGNED_AT, {"ids": ids}).all())
                self._store_diffs_in_rows(connection, taken)
                return [(report, assigned[report.assignment_id]) for report in taken]
            # Some row disagrees with memory (not expected: nothing else changes them): undo,
            # and decide the batch one row at a time to refuse exactly those.
            connection.rollback()
        marked = []
        for report in taken:
            try:
                assigned_at = self._mark_reported(connection, report.assignment_id, now,
                                                  report.num_samples, report.metrics,
                                                  report.location)
            except ApiError as refusal:  # (the row changed nothing: the others go on)
                report.outcome.set_exception(refusal)
                continue
            marked.append((report, assigned_at))
        self._store_diffs_in_rows(connection, [report for report, _ in marked])
        return marked

    @staticmethod
    def _store_diffs_in_rows(connection, reports: list[PendingReport]) -> None:
        rows = [{"assignment_id": report.assignment_id, "data": bytes(report.diff_bytes)}
                for report in reports if report.location is None]
        if rows:  # an engine without diff files (tests)
            connection.execute(ReportDiff.__table__.insert(), rows)

    @staticmethod
    def _mark_parameters(assignment_id: int, now: datetime, num_samples: int,
                         metrics: Mapping[str, float] | None,
                         location: DiffLocation | None) -> dict[str, Any]:
        return {
            "assignment_id": assignment_id, "accepted": AssignmentStatus.ACCEPTED,
            "reported": AssignmentStatus.REPORTED, "reported_at": now, "num_samples": num_samples,
            "metrics": metrics, "diff_offset": location.offset if location else None,
            "diff_length": location.length if location else None,
            "diff_checksum": location.checksum if location else None}

    def _mark_reported(self, connection, assignment_id: int, now: datetime, num_samples: int,
                       metrics: Mapping[str, float] | None,
                       location: DiffLocation | None = None) -> datetime:
        """Under the cycle's lock: the assignment reports now, if it still may, with where its
        diff lies in the cycle's file (None: in report_diffs). Returns when it was assigned."""
        # Only if still accepted, decided by the row itself under the cycle lock: a twin request
        # may have reported, the lease may have run out or the cycle closed while the diff was
        # being checked.
        assigned_at = connection.execute(_MARK_REPORTED, self._mark_parameters(
            assignment_id, now, num_samples, metrics, location)).scalar()
        if assigned_at is None:  # say why not
            status = connection.scalar(select(Assignment.status)
                                       .where(Assignment.id == assignment_id))
            if status is None:  # its process was deleted meanwhile
                raise ApiError("process_unknown", "this model is no longer hosted", 404)
            self._check_may_report(status)
            raise _cycle_closed()
        return assigned_at

    def _reported(self, state: OpenCycle, config: ServerConfig, assignment_id: int,
                  now: datetime, assigned_at: datetime, diff, num_samples: int,
                  metrics: Mapping[str, float] | None) -> None:
        """After the report's commit, under the cycle's lock: memory follows; the report is
        folded (a restart would fold it from disk) and closes the cycle at its goal, unless this
        replica does not lead (the leader folds what the others stored: cluster.py)."""
        state.outstanding.pop(assignment_id, None)
        self._report_times[state.process_id].append((now - assigned_at).total_seconds())
        if self.cluster is not None:
            state.stored.add(assignment_id)  # (a single Node folds all it stores: no bookkeeping)
            if state.watcher is None:
                state.unfolded += 1
                return
        state.fold_report(diff, num_samples, metrics, off_hub=True, assignment_id=assignment_id)
        # Paused: the report counts, but the cycle closes only once resumed (its watcher).
        if state.reported >= config.max_diffs and not state.paused:
            self.close_cycle(state.process_id, state.cycle_id, reason=CloseReason.GOAL)

    @staticmethod
    def _check_on_time(state: OpenCycle, config: ServerConfig, assignment_id: int,
                       now: datetime) -> None:
        """Refuse a report that came after the deadline or its lease though the watcher has not
        acted yet: under load it waits for this lock behind other requests, and the deadline is
        the rule, not the moment the watcher gets to it. A cycle short of its quorum whose policy
        extends the deadline is the exception: the watcher will extend it, so the report is on
        time for the extended cycle."""
        if _past_deadline(state, config, now):
            raise _cycle_closed()
        expires = state.outstanding.get(assignment_id)
        if expires is not None and not state.paused and state.deadline > now >= expires:
            raise _expired()

    @staticmethod
    def _report_evaluation(session, assignment: Assignment, diff_bytes: bytes | None,
                           num_samples: int, metrics: Mapping[str, float] | None) -> dict[str, Any]:
        """Store an evaluation's metrics on its assignment: no diff, no fold, no goal."""
        if diff_bytes is not None:
            raise ApiError("report_diff_unexpected",
                           "this is an evaluation assignment: report metrics and num_samples "
                           "only, without a diff", 400, details={"field": "diff"})
        if not metrics:
            raise ApiError("metrics_invalid",
                           "an evaluation report needs its metrics (e.g. accuracy, loss)", 400,
                           details={"field": "metrics"})
        if _evaluation_lease_over(assignment):
            raise _expired()
        sequence = assignment.cycle.sequence
        # One conditional UPDATE: of two twin reports racing here, exactly one is stored.
        stored = session.execute(
            update(Assignment)
            .where(Assignment.id == assignment.id,
                   Assignment.status == AssignmentStatus.ACCEPTED)
            .values(status=AssignmentStatus.REPORTED, reported_at=utcnow(),
                    num_samples=num_samples, metrics=dict(metrics))
        ).rowcount
        if stored != 1:
            session.refresh(assignment)
            CycleEngine._check_may_report(assignment.status)  # report_duplicate: the twin was stored
            raise _cycle_closed()  # no longer accepted, for a reason the check above does not name
        session.commit()
        return {"status": "success", "cycle": sequence}

    def secure_sum_ready(self, state: OpenCycle, running: RunningWeightedSum,
                         survivors: list[int]) -> None:
        """A secure cycle's unmasked sum (secagg_cycle.py) replaces its running sum; the cycle
        closes on it as if its reports had reached the goal."""
        with state.lock:
            if state.closed:
                return
            with self.db.session() as session:
                mark_survivors_reported(session, survivors)
            for assignment_id in survivors:
                state.outstanding.pop(assignment_id, None)
            state.running = running
            if not state.paused:
                self.close_cycle(state.process_id, state.cycle_id, reason=CloseReason.GOAL)

    # ----------------------------------------------------------------------------- closing

    def close_cycle(self, process_id: int, cycle_id: int, *, reason: CloseReason) -> None:
        """Close the open cycle: aggregate (goal, or deadline with quorum) or apply the quorum policy."""
        state = self._open.get(process_id)
        if state is None or state.cycle_id != cycle_id:
            return
        with state.lock:
            if state.closed:
                return  # closed meanwhile by another path (goal vs. deadline)
            if state.paused and reason != CloseReason.STOPPED:
                return  # paused while the watcher waited for the lock: time stands still
            extended_to = None
            with self.db.session() as session:
                config = self.config(session, process_id)
                if self.cluster is not None and not self._ready_to_close(session, state, reason):
                    return
                cycle = session.get(Cycle, cycle_id, with_for_update=True)
                now = utcnow()
                quorum = state.running.count >= config.min_diffs
                if reason == CloseReason.DEADLINE and not quorum and config.quorum_policy == "extend":
                    cycle.deadline = extended_to = now + timedelta(
                        seconds=config.extend_seconds or config.cycle_length
                    )
                else:
                    next_cycle, summary = self._close(session, state, cycle, config, reason, quorum, now)
            # Committed. Only now does memory follow the database.
            if extended_to is not None:
                state.deadline = extended_to
                state.wakeup.set()
                log.info(
                    "cycle %s of %s missed its quorum (%d of %d reports): "
                    "deadline extended to %s",
                    state.sequence, state.label, state.running.count, config.min_diffs,
                    _iso(extended_to),
                )
                return
            if summary["status"] == CycleStatus.COMPLETED:
                self._cycle_durations[process_id].append(state.running_seconds(now))
                self.held_out.schedule(process_id)  # scored in the background, never awaited
            # The next cycle becomes the open one before this one is marked closed, so nobody
            # who waited on this lock finds no open cycle in between.
            if next_cycle is not None:
                self._restore(next_cycle)
            else:
                del self._open[process_id]
            state.closed = True
            self._forget_places(state)
            if self.diff_files is not None:
                self.diff_files.discard(cycle_id)  # folded into the committed checkpoint
            state.outstanding.clear()
            state.wakeup.set()
            self.secure.forget(cycle_id)
            log.info(
                "cycle %s of %s %s (%s): %d reports, checkpoint %d",
                state.sequence, state.label, summary["status"], reason, state.running.count,
                summary["checkpoint"],
            )
        self._notify(process_id)

    def _close(self, session, state: OpenCycle, cycle: Cycle, config: ServerConfig,
               reason: CloseReason, quorum: bool, now: datetime) -> tuple[int | None, dict]:
        # The rule here: all work handed to the thread pool (aggregation, the strategy step)
        # comes before the first write. SQLite waits for its lock in C, blocking the hub, so a
        # yield with the write lock held can freeze the Node for busy_timeout.
        started = time.perf_counter()
        checkpoint_number = cycle.checkpoint_number
        abandoned_because = None
        privacy = None
        if quorum:
            aggregate = aggregate_cycle(session, state, cycle, config,
                                        self.spec(session, state.process_id),
                                        self.diff_encoding(session, state.process_id),
                                        self.diff_files)
            new_checkpoint = write_next_checkpoint(session, state.process_id, cycle,
                                                   config.strategy, state.running,
                                                   aggregate.average, self.diff_files)
            if new_checkpoint is None:
                abandoned_because = AbandonReason.AGGREGATE_NOT_FINITE
                log.warning("cycle %s of %s: the aggregate is not finite; the cycle is "
                            "abandoned and checkpoint %d kept", cycle.sequence, state.label,
                            checkpoint_number)
            else:
                checkpoint_number = new_checkpoint
                # Only a released checkpoint spends privacy: the accountant counts this cycle.
                privacy = aggregate.privacy
        else:
            abandoned_because = AbandonReason.NO_QUORUM
            log.info(
                "cycle %s of %s abandoned (%s) with %d of %d reports",
                cycle.sequence, state.label, reason, state.running.count, config.min_diffs,
            )
        cycle.status = CycleStatus.ABANDONED if abandoned_because else CycleStatus.COMPLETED
        dropped = session.execute(
            update(Assignment)
            .where(Assignment.cycle_id == cycle.id, Assignment.status == AssignmentStatus.ACCEPTED,
                   Assignment.task == AssignmentTask.TRAIN)
            .values(status=AssignmentStatus.DROPPED)
        ).rowcount
        cycle.closed_at = now
        cycle.summary = {
            "reason": str(reason),
            **({"abandoned_because": str(abandoned_because)} if abandoned_because else {}),
            **state.figures(),
            "dropped": dropped,
            "aggregation_seconds": round(time.perf_counter() - started, 6),
            "checkpoint": checkpoint_number,
            **({"privacy": privacy} if privacy else {}),
        }
        # The diffs are folded into the checkpoint; keeping them would only grow the database.
        session.execute(
            delete(ReportDiff).where(
                ReportDiff.assignment_id.in_(
                    select(Assignment.id).where(Assignment.cycle_id == cycle.id)
                )
            )
        )
        delete_secure_rounds(session, cycle.id)  # its rounds' messages, likewise
        next_cycle = self._open_next_cycle(session, state.process_id, cycle, config, checkpoint_number,
                                           stopping=reason == CloseReason.STOPPED)
        return next_cycle, {"status": cycle.status, "checkpoint": checkpoint_number}

    def _open_next_cycle(self, session, process_id, cycle, config, checkpoint_number, *,
                         stopping: bool = False) -> int | None:
        if stopping:
            # In the close's own transaction, so a crash leaves both or neither; and only now,
            # after the close's work in the thread pool: a write before it would hold SQLite's
            # lock across those yields (test_close_yields.py).
            session.get(Process, process_id).status = ProcessStatus.STOPPED
            return None
        if session.get(Process, process_id).status == ProcessStatus.STOPPED:
            return None
        completed = session.scalar(
            select(func.count())
            .select_from(Cycle)
            .where(Cycle.process_id == process_id, Cycle.status == CycleStatus.COMPLETED)
        )
        finished_because = None
        if config.num_cycles is not None and completed >= config.num_cycles:
            finished_because = FinishReason.NUM_CYCLES
            log.info("%s finished its %d cycles", self.label(session, process_id),
                     config.num_cycles)
        elif budget_exhausted(session, process_id, config):
            finished_because = FinishReason.PRIVACY_BUDGET
            log.info("%s finished: one more cycle would take ε above its target_epsilon %g",
                     self.label(session, process_id), config.differential_privacy.target_epsilon)
        if finished_because is not None:
            session.get(Process, process_id).status = ProcessStatus.FINISHED
            cycle.summary = {**(cycle.summary or {}), "finished_because": str(finished_because)}
            return None
        now = utcnow()
        next_cycle = Cycle(
            process_id=process_id,
            sequence=cycle.sequence + 1,
            checkpoint_number=checkpoint_number,
            started_at=now,
            deadline=now + timedelta(seconds=config.cycle_length),
            status=CycleStatus.OPEN,
        )
        session.add(next_cycle)
        session.flush()
        return next_cycle.id



def _past_deadline(state: OpenCycle, config: ServerConfig, now: datetime) -> bool:
    """The cycle's deadline has passed and it will close, not be extended: its watcher extends
    the deadline instead when the quorum is not in and the policy says so. A paused cycle's
    clock stands still (resume gives it a fresh deadline)."""
    if now < state.deadline or state.paused:
        return False
    return not (config.quorum_policy == "extend" and state.reported < config.min_diffs)


# Built once: the ORM's own UPDATE path (statement construction, ORM state, cache keys) cost ~1.4 ms
# of hub time per report, against ~0.3 ms for executing it (profiled with py-spy under
# apps/node/benchmarks/report_ingest.py).
_assignments = Assignment.__table__
_MARK_MANY = (
    update(_assignments)
    .where(_assignments.c.id == bindparam("assignment_id"),
           _assignments.c.status == bindparam("accepted"))
    .values(status=bindparam("reported"), reported_at=bindparam("reported_at"),
            num_samples=bindparam("num_samples"), metrics=bindparam("metrics"),
            diff_offset=bindparam("diff_offset"), diff_length=bindparam("diff_length"),
            diff_checksum=bindparam("diff_checksum"))
)
_MARK_REPORTED = _MARK_MANY.returning(_assignments.c.assigned_at)
_ASSIGNED_AT = (select(_assignments.c.id, _assignments.c.assigned_at)
                .where(_assignments.c.id.in_(bindparam("ids", expanding=True))))


def _diff_missing() -> ApiError:
    return ApiError("report_diff_missing", "a training assignment reports its diff (start − "
                    "trained parameters, safetensors) as the body", 400, details={"field": "diff"})


def _request_key_invalid() -> ApiError:
    return ApiError("request_key_invalid",
                    "request_key does not belong to this worker; ask for a cycle first", 403)


def _cycle_closed() -> ApiError:
    return ApiError(
        "cycle_closed",
        "the cycle of this assignment has closed; request a place in the current cycle",
        409,
    )


def _evaluation_lease_over(assignment: Assignment) -> bool:
    return (assignment.status == AssignmentStatus.ACCEPTED and assignment.expires_at is not None
            and utcnow() > assignment.expires_at)


def _expired() -> ApiError:
    return ApiError(
        "assignment_expired",
        "this assignment's lease ran out before it reported, and its place went to another "
        "device; drop this work and request a place in the current cycle",
        409,
    )
