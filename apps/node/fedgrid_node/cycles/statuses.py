"""The states a cycle and an assignment move through, and why a cycle closed.

One home for these rules, so the engine, the database and the API speak the same words:

    process:     active ──num_cycles completed──▶ finished
    cycle:       open ──goal, or deadline with quorum──▶ completed
                 open ──deadline without quorum (policy "abandon"), or a non-finite aggregate──▶ abandoned
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


class AbandonReason(StrEnum):
    NO_QUORUM = "no_quorum"
    AGGREGATE_NOT_FINITE = "aggregate_not_finite"
