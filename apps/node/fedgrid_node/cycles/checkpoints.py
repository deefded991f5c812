"""Closing a cycle into a checkpoint: the server strategy's step over the cycle's average diff."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from fedgrid_plans import tensors

from ..db.models import Checkpoint, Cycle, Model, Plan, Process
from .aggregation import RunningWeightedSum
from .diff_encoding import decode_accepted, encoding_of
from .diff_files import DiffFiles, read_diff, reported_diffs
from .off_hub import run_off_hub
from .strategies import build_strategy


def write_next_checkpoint(session, process_id: int, cycle: Cycle, strategy_config: dict[str, Any],
                          running: RunningWeightedSum,
                          average: dict[str, np.ndarray] | None = None,
                          diffs: DiffFiles | None = None) -> int | None:
    """Apply the strategy to the cycle's average diff and add the next checkpoint to the session.

    ``average`` is the aggregator's result (cycle_aggregate.py); without it, the running mean.
    ``diffs``: the Node's diff files (a hosted averaging plan reads the stored diffs again).

    Returns its number, or None (nothing written) when the strategy's step is not finite.
    """
    model_id = session.scalar(select(Model.id).where(Model.process_id == process_id))
    current = session.execute(
        select(Checkpoint.number, Checkpoint.data, Checkpoint.strategy_state).where(
            Checkpoint.model_id == model_id, Checkpoint.number == cycle.checkpoint_number
        )
    ).one()
    strategy = build_strategy(strategy_config)
    if getattr(strategy, "uses_hosted_plan", False):
        average = _average_with_hosted_plan(session, process_id, cycle.id, strategy, diffs)
    elif average is None:
        average = running.average()

    def step() -> tuple[bytes, bytes | None] | None:
        params = tensors.decode(current.data)
        strategy_state = tensors.decode(current.strategy_state) if current.strategy_state else {}
        new_params, new_state = strategy.step(params, average, strategy_state)
        # Reports are bounded (report_checks.py), but a strategy's step can still overflow
        # float32 (moments square the update): a non-finite checkpoint would ruin every later
        # cycle, so it is never written.
        if not all(np.isfinite(v).all() for v in (*new_params.values(), *(new_state or {}).values())):
            return None
        return (
            tensors.encode({name: new_params[name] for name in params}),
            tensors.encode(new_state) if new_state else None,
        )

    stepped = run_off_hub(step)
    if stepped is None:
        return None
    data, strategy_state = stepped
    number = current.number + 1
    session.add(
        Checkpoint(model_id=model_id, number=number, data=data, strategy_state=strategy_state)
    )
    return number


def _average_with_hosted_plan(session, process_id: int, cycle_id: int, strategy,
                              diffs: DiffFiles | None) -> dict:
    """PyGrid parity: run the hosted averaging plan over the stored diffs, one at a time."""
    plan_file = session.scalar(
        select(Plan.data).where(Plan.process_id == process_id, Plan.kind == "averaging")
    )
    assignment_ids = [assignment_id for assignment_id, _, _ in reported_diffs(session, cycle_id)]
    encoding = encoding_of(session.scalar(select(Process.client_config)
                                          .where(Process.id == process_id)))
    averaging = strategy.averager(plan_file)
    average = None
    # Rows are read here on the hub (the connection is not thread-safe); each plan step, the
    # numpy work, runs in the pool.
    for count, assignment_id in enumerate(assignment_ids):
        data = read_diff(session, diffs, assignment_id)
        item = decode_accepted(data, encoding)  # stored as received, maybe encoded
        del data
        average = (averaging.first(item) if count == 0
                   else run_off_hub(averaging.step, average, item, count))
    return average
