"""CPU-bound numpy work on gevent's thread pool, so the hub keeps serving other devices.

numpy releases the GIL, so a fold or a strategy step runs beside the hub. Only pure computation
goes there: database sessions and sockets belong to the hub's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

from .aggregation import RunningWeightedSum

# Folding is memory-bound; two threads move about twice the bytes of one on our 2-core machines.
FOLD_THREADS = 2


def outcome(fn: Callable, *args: Any) -> tuple[bool, Any]:
    # Exceptions travel back as values: raised inside a pool thread, gevent would print each one
    # (an expected `diff_mismatch` included) as an unhandled traceback.
    try:
        return True, fn(*args)
    except Exception as exc:
        return False, exc


def unwrap(result: tuple[bool, Any]) -> Any:
    """The value `outcome` returned, or its exception raised."""
    ok, value = result
    if not ok:
        raise value
    return value


def run_off_hub(fn: Callable, *args: Any) -> Any:
    """Run CPU-bound numpy work in gevent's thread pool (numpy releases the GIL).

    Only pure computation goes there: database sessions and sockets belong to the hub's thread.
    """
    return unwrap(gevent.get_hub().threadpool.apply(outcome, (fn, *args)))


def fold_many_off_hub(running: RunningWeightedSum,
                      reports: list[tuple[Any, float, int]]) -> None:
    """Fold (diff, coefficient, weight) reports in order, each on `FOLD_THREADS` pool threads
    (disjoint slices): one hand-off per thread for the whole batch, not per report."""
    pool = gevent.get_hub().threadpool
    pairs = [(diff, coefficient) for diff, coefficient, _ in reports]
    parts = [pool.spawn(outcome, running.fold_parts, pairs, part, FOLD_THREADS)
             for part in range(FOLD_THREADS)]
    for part in parts:
        unwrap(part.get())
    for _, _, weight in reports:
        running.finish_fold(weight)
