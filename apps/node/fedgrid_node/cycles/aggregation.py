"""Streaming, num_samples-weighted aggregation of diffs.

Each report is folded into a running sum as it arrives, so memory is O(model) however many
devices report (PyGrid loaded every diff of a cycle into memory and averaged them unweighted).

The sum is kept in float64: with integer weights below 2**29 every product ``n * diff`` is exact,
so the result does not depend on the order reports arrive in beyond float64 rounding, and a
restart that re-folds the stored diffs in acknowledgement order rebuilds it bit for bit.

Speed: the fold is memory-bound. A model-sized float64 temporary per report would triple the
memory traffic, so each tensor is folded in chunks through a small scratch buffer that stays in
the CPU cache, and the work can be split into disjoint parts that run on separate threads
(numpy releases the GIL), see `fold_part`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# 256 Ki float64 values = 2 MiB of scratch per thread: large enough that numpy's per-call
# overhead is amortised, small enough to stay in L2/L3 cache (measured best of 16 Ki-1 Mi).
CHUNK = 256 * 1024


class RunningWeightedSum:
    """sum_i n_i * diff_i and sum_i n_i over the reports folded so far."""

    def __init__(self, spec: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.sums = {name: np.zeros(shape, dtype=np.float64) for name, (shape, _) in spec.items()}
        self.total_samples = 0
        self.count = 0
        self._scratch: dict[int, np.ndarray] = {}

    def fold(self, diff: Mapping[str, np.ndarray], num_samples: int) -> None:
        """Fold one report in (single-threaded)."""
        self.fold_part(diff, num_samples, 0, 1)
        self.finish_fold(num_samples)

    def fold_part(self, diff: Mapping[str, np.ndarray], num_samples: int, part: int, parts: int) -> None:
        """Fold the ``part``-th of ``parts`` disjoint slices of every tensor.

        Parts touch disjoint memory, so they may run at the same time on different threads;
        call `finish_fold` once after all parts of a report are done.
        """
        weight = float(num_samples)
        scratch = self._scratch.get(part)
        if scratch is None:
            scratch = self._scratch[part] = np.empty(CHUNK, dtype=np.float64)
        for name, total in self.sums.items():
            flat_total = total.reshape(-1)
            flat_diff = np.asarray(diff[name]).reshape(-1)
            size = flat_total.size
            begin, end = size * part // parts, size * (part + 1) // parts
            for start in range(begin, end, CHUNK):
                stop = min(start + CHUNK, end)
                piece = scratch[: stop - start]
                # Widen first, then scale in float64: a float32 diff times a Python float would be
                # computed in float32 (NEP 50), losing the precision the float64 sum keeps; and
                # a plain widening copy is faster than numpy's casting multiply.
                np.copyto(piece, flat_diff[start:stop])
                np.multiply(piece, weight, out=piece)
                np.add(flat_total[start:stop], piece, out=flat_total[start:stop])

    def finish_fold(self, num_samples: int) -> None:
        self.total_samples += num_samples
        self.count += 1

    def average(self) -> dict[str, np.ndarray]:
        if self.total_samples <= 0:
            raise ValueError("no reports were folded; there is nothing to average")
        return {name: total / self.total_samples for name, total in self.sums.items()}
