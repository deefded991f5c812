"""The states a cycle and an assignment move through, and why a cycle closed.

One home for these rules, so the engine, the database and the API speak the same words:

    process:     active ──num_cycles completed, or the privacy budget spent──▶ finished
    cycle:       open ──goal, or deadline with quorum──▶ completed
                 open ──deadline without quorum (policy "abandon"), or a non-finite aggregate──▶ abandoned
    assignment:  accepted ──report stored──▶ reported
                 accepted ──lease ran out──▶ expired   (the place goes to another device)
                 accepted ──cycle closed first──▶ dropped
"""

from __future__ import annotations

from enum import StrEnum


class ProcessStatus(StrEnum):
    ACTIVE = "active"  # hosted, cycles running
    FINISHED = "finished"  # num_cycles completed


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


class CloseReason(StrEnum):
    GOAL = "goal"  # max_diffs reports are in
    DEADLINE = "deadline"


class AbandonReason(StrEnum):
    NO_QUORUM = "no_quorum"
    AGGREGATE_NOT_FINITE = "aggregate_not_finite"
