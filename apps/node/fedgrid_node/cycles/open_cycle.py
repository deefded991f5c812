"""What the engine keeps in memory for one open cycle, rebuilt from the database at start-up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import gevent
import gevent.event
import gevent.lock

from .aggregation import RunningWeightedSum
from .aggregators import FoldRule, Mean
from .off_hub import fold_many_off_hub, run_off_hub
from .pace import CycleCounts
from .report_batches import ReportBatches

if TYPE_CHECKING:
    from .place_writer import QueuedPlace


@dataclass
class MetricTally:
    """Client-reported metrics, each averaged weighted by the reports' sample counts."""

    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)

    def add(self, metrics: Mapping[str, float] | None, num_samples: int) -> None:
        for key, value in (metrics or {}).items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * num_samples
            self.weights[key] = self.weights.get(key, 0) + num_samples

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.weights[key] for key in self.sums if self.weights[key]}


class Leases(dict):
    """assignment id -> end of its lease, with the earliest end kept: every cycle-request (pace
    steering's `next_lease_expiry_seconds`) and every wake of the watcher asks for it, and a
    `min` over a large cohort's leases cost each of them ~10 µs per 1,000 places. A new lease
    keeps the answer up to date; any other change has it recomputed at the next ask."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._earliest: datetime | None = None
        self._known = not self  # `_earliest` is the minimum (an empty table's is None)

    def earliest(self) -> datetime | None:
        if not self._known:
            self._earliest = min(self.values(), default=None)
            self._known = True
        return self._earliest

    def __setitem__(self, assignment_id: int, expires: datetime) -> None:
        if self._known and assignment_id not in self:
            if self._earliest is None or expires < self._earliest:
                self._earliest = expires
        else:
            self._known = False  # (a lease changed: it may have been the earliest)
        super().__setitem__(assignment_id, expires)

    def __delitem__(self, assignment_id: int) -> None:
        super().__delitem__(assignment_id)
        self._known = False

    def pop(self, *args):
        self._known = False
        return super().pop(*args)

    def popitem(self):
        self._known = False
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._known = False

    def update(self, *args, **kwargs) -> None:
        super().update(*args, **kwargs)
        self._known = False

    def setdefault(self, *args):
        self._known = False
        return super().setdefault(*args)

    def __ior__(self, other):
        self._known = False
        return super().__ior__(other)


@dataclass
class OpenCycle:
    cycle_id: int
    process_id: int
    model: str  # the process's name and version, for answers given without a database trip
    version: str
    sequence: int
    checkpoint_number: int  # the checkpoint this cycle trains
    label: str  # "digits_mlp 1.0 (process 6)": how the logs name the process
    started_at: datetime
    deadline: datetime
    cycle_length: float
    running: RunningWeightedSum
    # How reports enter `running` (weights, clipping); coordinate-wise rules only count them.
    rule: FoldRule = field(default_factory=lambda: FoldRule(Mean(weighted=True)))
    num_samples: int = 0  # as the devices claimed them, whatever the rule's weights
    unclipped: int = 0  # reports within the rule's clip (adaptive clipping's count; never shown)
    metrics: MetricTally = field(default_factory=MetricTally)
    accepted: int = 0  # assignments handed out (a figure: expired ones included)
    expired: int = 0  # assignments whose lease ran out
    requests: int = 0
    rejected: Counter = field(default_factory=Counter)
    # assignment id -> end of its lease, for every accepted assignment that has not reported
    outstanding: Leases = field(default_factory=Leases)
    # A single Node: when each place in `outstanding` was assigned, where memory has it (the
    # place writer's places, and those restored at start), so a report's time from its place
    # (pace steering) needs no read of its row; a place not here has it read.
    assigned_at: dict[int, datetime] = field(default_factory=dict)
    # A single Node only (replicas read the database): the workers that have an assignment row
    # in this cycle, whatever its task or status, so that a request from any other worker (a
    # device turned away, the usual request) is decided without looking for its row; and, with
    # a cooldown, worker -> the last earlier cycle it trained in, for the workers that trained
    # within the cooldown (fixed for the cycle: only earlier cycles count).
    workers: set[str] = field(default_factory=set)
    cooling: dict[str, int] = field(default_factory=dict)
    # request key -> (assignment id, worker id) of the places handed out in this cycle (a single
    # Node matches reports to them from memory; an entry counts only while in `outstanding`)
    request_keys: dict[str, tuple[int, str]] = field(default_factory=dict)
    # A single Node's training places taken but not written yet (place_writer.py), by worker:
    # they count as taken, and leave (into `outstanding`, or given back) when their batch is
    # written, under `lock`.
    placing: dict[str, QueuedPlace] = field(default_factory=dict)
    # Set (under `lock`) once the cycle is completed or abandoned: whoever waited on the lock
    # must look up the process's open cycle again instead of acting on this one.
    closed: bool = False
    # The process is paused (process_control.py): the watcher does not act on time, a goal
    # reached does not close the cycle, and nobody new is accepted. Mirrors the database's
    # process status, changed under `lock` after the commit.
    paused: bool = False
    # Time the cycle spent paused, so that pace steering learns how long cycles take to run, not
    # how long a researcher looked at one (since when it is paused now; seconds of earlier pauses).
    paused_since: datetime | None = None
    paused_seconds: float = 0.0
    lock: gevent.lock.RLock = field(default_factory=gevent.lock.RLock)
    # A single Node's reports waiting to be stored, a batch at a time (report_batches.py).
    reports: ReportBatches | None = None
    # Wakes the cycle's watcher early: a new lease, an extension, the goal or the close.
    wakeup: gevent.event.Event = field(default_factory=gevent.event.Event)
    watcher: gevent.Greenlet | None = None
    # Replicas on PostgreSQL (cluster.py): the assignments whose reports are in `running`, and
    # how many stored reports are not (taken by another replica, not folded here yet). A single
    # Node folds every report it stores, so `unfolded` stays 0 there.
    folded: set[int] = field(default_factory=set)
    unfolded: int = 0
    stored: set[int] = field(default_factory=set)  # assignments whose reports are stored

    def running_seconds(self, now: datetime) -> float:
        """How long the cycle has run, its pauses left out."""
        pausing = (now - self.paused_since).total_seconds() if self.paused_since else 0.0
        return (now - self.started_at).total_seconds() - self.paused_seconds - pausing

    @property
    def reported(self) -> int:
        """Reports stored for this cycle, folded here or not."""
        return self.running.count + self.unfolded

    @property
    def places_taken(self) -> int:
        return self.reported + len(self.outstanding) + len(self.placing)

    def fold_report(self, diff: Mapping, num_samples: int, metrics: Mapping[str, float] | None,
                    *, off_hub: bool, assignment_id: int | None = None) -> None:
        """Fold an acknowledged report by the cycle's rule (on the thread pool when ``off_hub``)."""
        self.fold_reports([(diff, num_samples, metrics, assignment_id)], off_hub=off_hub)

    def fold_reports(self, reports: list[tuple[Mapping, int, Mapping[str, float] | None,
                                              int | None]], *, off_hub: bool = True) -> None:
        """Fold acknowledged (diff, num_samples, metrics, assignment id) reports by the cycle's
        rule, in order: on the thread pool when ``off_hub``, one hand-off per fold thread for
        all of them (the same sums as one by one: aggregation.py)."""
        def prepare_all():
            return [self.rule.prepare(diff, num_samples) for diff, num_samples, _, _ in reports]

        clipping = self.rule.clip is not None
        prepared = run_off_hub(prepare_all) if off_hub and clipping else prepare_all()
        if not self.rule.aggregator.streams:
            for weight, _, _ in prepared:
                self.running.finish_fold(weight)  # counted; combined from storage at the close
        elif off_hub:
            fold_many_off_hub(self.running, [(diff, coefficient, weight) for (diff, *_), (
                weight, coefficient, _) in zip(reports, prepared, strict=True)])
        else:
            for (diff, *_), (weight, coefficient, _) in zip(reports, prepared, strict=True):
                self.running.fold(diff, weight, coefficient)
        for (_, num_samples, metrics, assignment_id), (_, _, within) in zip(reports, prepared,
                                                                           strict=True):
            if assignment_id is not None:
                self.folded.add(assignment_id)
            self.num_samples += num_samples
            self.unclipped += int(within)
            self.fold_metrics(metrics, num_samples)

    def fold_metrics(self, metrics: Mapping[str, float] | None, num_samples: int) -> None:
        self.metrics.add(metrics, num_samples)

    def weighted_metrics(self) -> dict[str, float]:
        return self.metrics.means()

    def next_wake(self) -> datetime:
        """When the watcher must act next: the deadline, or the first lease to run out."""
        earliest = self.earliest_lease()
        return self.deadline if earliest is None else min(self.deadline, earliest)

    def earliest_lease(self) -> datetime | None:
        """The end of the first outstanding lease (None without any)."""
        return self.outstanding.earliest()

    def counts(self, now: datetime, typical_cycle_seconds: float | None) -> CycleCounts:
        """What selection and pace steering need to know about this cycle right now."""
        next_expiry = self.earliest_lease()
        return CycleCounts(
            places_taken=self.places_taken,
            requests=self.requests,
            elapsed_seconds=(now - self.started_at).total_seconds(),
            remaining_seconds=max(0.0, (self.deadline - now).total_seconds()),
            reported=self.reported,
            cycle_length=self.cycle_length,
            typical_cycle_seconds=typical_cycle_seconds,
            next_lease_expiry_seconds=(
                None if next_expiry is None else max(0.0, (next_expiry - now).total_seconds())
            ),
        )

    def figures(self) -> dict:
        """The live figures the cycles listing and the metrics show for an open cycle."""
        return {
            "accepted": self.accepted,
            "reported": self.reported,
            "expired": self.expired,
            "dropped": 0,
            "requests": self.requests,
            "rejected": dict(self.rejected),
            "num_samples": self.num_samples,
            "client_metrics": self.weighted_metrics(),
            "aggregation_seconds": None,
        }
