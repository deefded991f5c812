"""The close's first half: the cycle's one diff, by the process's aggregation settings.

- streaming means (FedAvg's weighted mean, the norm-bounded mean): the running sum's average;
- coordinate-wise rules (median, trimmed mean): the stored reports, spooled and combined block by
  block (aggregators/stored_reports.py);
- differential privacy: the noised fixed-denominator mean (privacy/dp_fedavg.py) of the clipped
  reports or, under secure aggregation, of the devices' clipped updates' unmasked sum, the next clip
  (privacy/adaptive_clipping.py) and ε (privacy/accountant.py), returned as the cycle's
  ``privacy`` summary;
- the hosted averaging plan: nothing here (checkpoints.py runs the plan).

The numpy work runs on gevent's thread pool; database reads stay on the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import select

from ..db.models import Cycle
from .aggregators import FoldRule, build_aggregator
from .aggregators.stored_reports import ReportSpool
from .diff_encoding import DEFAULT_ENCODING, decode_accepted
from .diff_files import DiffFiles, read_diff, reported_diffs
from .off_hub import run_off_hub
from .open_cycle import OpenCycle
from .privacy.accountant import epsilon, sampling_rate, steps_of, target_delta
from .privacy.adaptive_clipping import default_count_stddev, next_clip
from .privacy.dp_fedavg import noised_mean, update_noise_multiplier
from .statuses import CycleStatus


@dataclass
class CycleAggregate:
    average: dict[str, np.ndarray] | None  # None: the hosted averaging plan computes it
    privacy: dict[str, Any] | None = None


def fold_rule(session, process_id: int, config) -> FoldRule:
    """The rule for the process's open cycle (differential privacy: with this cycle's clip)."""
    clip = config.norm_bound
    if config.differential_privacy is not None:
        clip = current_clip(session, process_id, config)
    return FoldRule(build_aggregator(config), clip)


def current_clip(session, process_id: int, config) -> float:
    """The clip of the next DP cycle: the last completed cycle's ``next_clip``, else the start."""
    summary = session.scalar(
        select(Cycle.summary)
        .where(Cycle.process_id == process_id, Cycle.status == CycleStatus.COMPLETED)
        .order_by(Cycle.sequence.desc()).limit(1)
    )
    privacy = (summary or {}).get("privacy") or {}
    return float(privacy.get("next_clip", config.differential_privacy.clip))


def privacy_steps(session, process_id: int, *, excluding_cycle: int | None = None):
    """The accountant's steps of the process's completed cycles, from their summaries."""
    query = select(Cycle.summary).where(Cycle.process_id == process_id,
                                        Cycle.status == CycleStatus.COMPLETED)
    if excluding_cycle is not None:
        query = query.where(Cycle.id != excluding_cycle)
    return steps_of(session.scalars(query.order_by(Cycle.sequence)))


def aggregate_cycle(session, state: OpenCycle, cycle: Cycle, config, spec,
                    encoding: str = DEFAULT_ENCODING,
                    diffs: DiffFiles | None = None) -> CycleAggregate:
    """``encoding``: how the process's stored reports are encoded (they are kept as received:
    float32, float16 or int8, cycles/diff_encoding.py); ``diffs``: the Node's diff files, where
    a single Node stores them (cycles/diff_files.py)."""
    if config.strategy.get("name") == "hosted_averaging_plan":
        return CycleAggregate(None)
    if config.differential_privacy is not None:
        return _private_mean(session, state, cycle, config)
    if not state.rule.aggregator.streams:
        return CycleAggregate(_combine_stored(session, state, cycle.id, spec, encoding,
                                              diffs))
    return CycleAggregate(state.running.average())


def _combine_stored(session, state: OpenCycle, cycle_id: int, spec, encoding: str,
                    diffs: DiffFiles | None) -> dict[str, np.ndarray]:
    assignment_ids = [assignment_id for assignment_id, _, _ in reported_diffs(session, cycle_id)]
    with ReportSpool(spec, len(assignment_ids), clip=state.rule.clip,
                     decode=partial(decode_accepted, encoding=encoding)) as spool:
        # Each diff is read by itself (holding every report is what the spool is there to
        # avoid), on the hub (the connection is not thread-safe); decoding, clipping and writing
        # each one, then the combining, run in the pool.
        for index, assignment_id in enumerate(assignment_ids):
            data = read_diff(session, diffs, assignment_id)
            run_off_hub(spool.write, index, data)
            del data
        return run_off_hub(spool.combine, state.rule.aggregator)


def _private_mean(session, state: OpenCycle, cycle: Cycle, config) -> CycleAggregate:
    dp = config.differential_privacy
    expected = config.max_diffs
    # Under secure aggregation the devices clipped (clip_at: device) and the running sum is the
    # unmasked sum of the survivors: the same fixed-denominator mean and noise apply, but there
    # is no count of unclipped updates to adapt the clip with (hosting refuses adaptive settings;
    # a config stored before that rule keeps its clip fixed here).
    adaptive = dp.target_unclipped_quantile is not None and config.secure_aggregation is None
    count_stddev = (dp.clipped_count_stddev or default_count_stddev(expected)) if adaptive else None
    update_multiplier = update_noise_multiplier(dp.noise_multiplier, count_stddev)
    clip = state.rule.clip
    stddev = update_multiplier * clip / expected
    rng = np.random.default_rng()  # fresh OS entropy every close
    average = run_off_hub(noised_mean, state.running.totals(), expected, stddev, rng)
    following = clip
    if adaptive:
        following = next_clip(clip, state.unclipped, expected,
                              target_quantile=dp.target_unclipped_quantile,
                              learning_rate=dp.clip_learning_rate, count_stddev=count_stddev,
                              rng=rng)
    rate, delta = sampling_rate(config), target_delta(config)
    steps = [*privacy_steps(session, state.process_id, excluding_cycle=cycle.id),
             (dp.noise_multiplier, rate)]
    return CycleAggregate(average, {
        "noise_multiplier": dp.noise_multiplier,
        "update_noise_multiplier": update_multiplier,
        "sampling_rate": rate,
        "clip": clip,
        "noise_stddev": stddev,
        "next_clip": following,
        # On the hub, not the thread pool: the query above may have flushed the close's writes,
        # and with SQLite's write lock held a yield lets another greenlet's write block the
        # whole hub in SQLite's busy wait (30 s stalls were seen). The accountant takes ms.
        "epsilon": epsilon(steps, delta),
        "delta": delta,
    })


def budget_exhausted(session, process_id: int, config) -> bool:
    """Whether one more DP cycle would take ε above ``target_epsilon`` (the completed cycles,
    the one closing now included, are in the session)."""
    dp = config.differential_privacy
    if dp is None or dp.target_epsilon is None:
        return False
    steps = [*privacy_steps(session, process_id), (dp.noise_multiplier, sampling_rate(config))]
    # On the hub: the session holds SQLite's write lock here (the closing cycle's summary was
    # flushed by the query above); see _private_mean.
    return epsilon(steps, target_delta(config)) > dp.target_epsilon


def privacy_status(session, process_id: int, config) -> dict[str, Any] | None:
    """What the process has spent so far (None when differential privacy is off): ε after its
    completed cycles, as recorded when each closed (a restart reports the same figures)."""
    dp = config.differential_privacy
    if dp is None:
        return None
    summaries = session.scalars(
        select(Cycle.summary)
        .where(Cycle.process_id == process_id, Cycle.status == CycleStatus.COMPLETED)
        .order_by(Cycle.sequence)
    ).all()
    spent = [s["privacy"] for s in summaries if s and s.get("privacy")]
    return {
        "epsilon": spent[-1]["epsilon"] if spent else 0.0,
        "delta": target_delta(config),
        "target_epsilon": dp.target_epsilon,
        "cycles": len(spent),
        "clip": spent[-1]["next_clip"] if spent else dp.clip,
    }
