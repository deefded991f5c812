"""Federated evaluation: which cycles hand out evaluation assignments, and what their reports say.

With `server_config.evaluation_every` = N, cycles 1, 1 + N, 1 + 2N... hand out up to
`evaluation_devices` evaluation assignments each: a device asks for a cycle as usual and, when
every training place is taken (it would be turned away with `cycle_full`), is told to evaluate
the cycle's checkpoint instead. So evaluation never takes a training place, never delays a cycle,
and its reports (metrics and num_samples, no diff) never count toward the goal or touch the
checkpoint. It needs more devices asking than `max_workers`.

The reports stay on their assignment rows; a checkpoint's federated score is their
num_samples-weighted mean, per metric, over every cycle that evaluated it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from ..db.models import Assignment, Cycle
from .server_config import ServerConfig
from .statuses import AssignmentStatus, AssignmentTask


def evaluates(config: ServerConfig, sequence: int) -> bool:
    """Whether cycle `sequence` hands out evaluation assignments."""
    every = config.evaluation_every
    return every is not None and (sequence - 1) % every == 0


def evaluation_place_left(session, config: ServerConfig, cycle_id: int, sequence: int,
                          now: datetime) -> bool:
    if not evaluates(config, sequence):
        return False
    # Reported ones count, and accepted ones still in their lease: an evaluation whose lease ran
    # out gives its place back, like a training one (nobody marks it expired before it is
    # looked at again, so the lease is compared here).
    handed_out = session.scalar(
        select(func.count()).select_from(Assignment)
        .where(Assignment.cycle_id == cycle_id, Assignment.task == AssignmentTask.EVALUATE,
               or_(Assignment.status == AssignmentStatus.REPORTED,
                   and_(Assignment.status == AssignmentStatus.ACCEPTED,
                        Assignment.expires_at > now)))
    )
    return handed_out < config.evaluation_devices


def federated_scores(session, process_id: int) -> dict[int, dict[str, Any]]:
    """Checkpoint number -> ``{"metrics": weighted means, "num_samples", "reports"}``."""
    rows = session.execute(
        select(Cycle.checkpoint_number, Assignment.num_samples, Assignment.metrics)
        .join(Cycle, Cycle.id == Assignment.cycle_id)
        .where(Cycle.process_id == process_id, Assignment.task == AssignmentTask.EVALUATE,
               Assignment.status == AssignmentStatus.REPORTED)
        .order_by(Assignment.reported_at, Assignment.id)
    ).all()
    sums: dict[int, dict[str, list[float]]] = {}  # checkpoint -> metric -> [weighted sum, weight]
    totals: dict[int, list[int]] = {}  # checkpoint -> [num_samples, reports]
    for checkpoint, num_samples, metrics in rows:
        total = totals.setdefault(checkpoint, [0, 0])
        total[0] += num_samples
        total[1] += 1
        per_metric = sums.setdefault(checkpoint, {})
        for name, value in (metrics or {}).items():
            running = per_metric.setdefault(name, [0.0, 0])
            running[0] += float(value) * num_samples
            running[1] += num_samples
    return {
        checkpoint: {
            "metrics": {name: s / w for name, (s, w) in sorted(sums[checkpoint].items())},
            "num_samples": num_samples,
            "reports": reports,
        }
        for checkpoint, (num_samples, reports) in sorted(totals.items())
    }
