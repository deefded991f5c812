"""The states a cycle and an assignment move through, and why a cycle closed.

One home for these rules, so the engine, the database and the API speak the same words:

    process:     active ──num_cycles completed, or the privacy budget spent──▶ finished
                 active ──pause──▶ paused ──resume──▶ active   (pause and resume: admin events)
                 active or paused ──stop──▶ stopped   (the open cycle closes at once: aggregated
                                                       with min_diffs reports, else abandoned)
                 paused, stopped or finished ──delete──▶ (no rows left; active too with `force`)
                 While paused the open cycle stays open with its clock stopped: accepted devices
                 may still report (and are counted), but it neither closes nor times out, and new
                 cycle-requests are rejected with `process_paused`. Resuming gives it a fresh
                 deadline (and its outstanding assignments fresh leases). Stopped and finished
                 are final; cycle-requests get `training_stopped` / `training_finished`.
    cycle:       open ──goal, or deadline with quorum──▶ completed
                 open ──deadline without quorum (policy "abandon"), or a non-finite aggregate──▶ abandoned
                 open ──stop──▶ completed with min_diffs reports, else abandoned (reason "stopped")
    assignment:  accepted ──report stored──▶ reported
                 accepted ──lease ran out──▶ expired   (the place goes to another device)
                 accepted ──cycle closed first──▶ dropped   (training assignments only: an
                 evaluation assignment may still report its checkpoint's metrics after the close)
"""

from __future__ import annotations

from enum import StrEnum


class ProcessStatus(StrEnum):
    ACTIVE = "active"  # hosted, cycles running
    FINISHED = "finished"  # num_cycles completed
    PAUSED = "paused"  # cycles frozen by the researcher; resumable
    STOPPED = "stopped"  # finished early by the researcher: no more cycles


class FinishReason(StrEnum):
    """Why a process finished: its last cycle's summary says (``finished_because``)."""

    NUM_CYCLES = "num_cycles"
    PRIVACY_BUDGET = "privacy_budget"  # one more cycle would exceed target_epsilon


class CycleStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"  # aggregated into a new checkpoint
    ABANDONED = "abandoned"  # closed without a new checkpoint


class AssignmentStatus(StrEnum):
    ACCEPTED = "accepted"  # holds a place, may still report
    REPORTED = "reported"
    EXPIRED = "expired"  # did not report within its lease
    DROPPED = "dropped"  # never reported before its cycle closed


class AssignmentTask(StrEnum):
    TRAIN = "train"  # train on local data, report a diff
    EVALUATE = "evaluate"  # run the checkpoint on local data, report metrics only


class CloseReason(StrEnum):
    GOAL = "goal"  # max_diffs reports are in
    DEADLINE = "deadline"
    STOPPED = "stopped"  # the researcher stopped the process


class AbandonReason(StrEnum):
    NO_QUORUM = "no_quorum"
    AGGREGATE_NOT_FINITE = "aggregate_not_finite"
