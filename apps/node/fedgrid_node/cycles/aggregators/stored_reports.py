"""Coordinate-wise rules over the cycle's stored reports, in bounded memory.

Every acknowledged report's diff is already in the database (`report_diffs`, kept until the
cycle's checkpoint is written: that is what makes a report durable). A median needs every
report's value of a coordinate at once, so at the close the reports are read back once, in
acknowledgement order, and *spooled* into a temporary file laid out by blocks of coordinates:

    block b = coordinates [start_b, start_b + width_b) of every report, report-major

so that each block is then one contiguous read of a (reports × width) float32 matrix. A block is
at most `BLOCK_BYTES`, whatever the model and however many reports, so the close holds one
decoded report (while spooling) or one block and its sorted copy (while combining) — about what
the streaming mean holds — plus the O(model) result. The price is disk: reports × model size
(float32) in the temporary directory, for the duration of the close, and reading every diff a
second time.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping

import numpy as np

from fedgrid_plans import tensors

from .base import Aggregator
from .norm_bound import clip_factor, l2_norm

BLOCK_BYTES = 16 * 1024 * 1024
MIN_BLOCK_WIDTH = 1024  # coordinates: below this, per-block overheads dominate


class ReportSpool:
    """Reports written in, blocks of coordinates read out. Pure file and numpy work (no
    database), so every method may run on gevent's thread pool."""

    def __init__(self, spec: Mapping[str, tuple[tuple[int, ...], np.dtype]], reports: int,
                 *, clip: float | None = None, directory: str | None = None,
                 decode: Callable[[bytes], Mapping[str, np.ndarray]] = tensors.decode) -> None:
        # decode: stored report bytes -> float32 diff (compressed reports are kept as received).
        if reports < 1:
            raise ValueError("there are no reports to combine")
        self.spec = dict(spec)
        self.reports = reports
        self.clip = clip
        self.decode = decode
        self.sizes = {name: math.prod(shape) for name, (shape, _) in self.spec.items()}
        self.starts, position = {}, 0
        for name, size in self.sizes.items():
            self.starts[name] = position
            position += size
        self.total = position
        self.width = max(MIN_BLOCK_WIDTH, BLOCK_BYTES // (4 * reports))
        self._file = tempfile.TemporaryFile(prefix="fedgrid-reports-", dir=directory)
        self._fd = self._file.fileno()
        self.written = 0

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ReportSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def blocks(self):
        """(start, stop) of every block of coordinates."""
        for start in range(0, self.total, self.width):
            yield start, min(start + self.width, self.total)

    def _segments(self, start: int, stop: int):
        """(tensor name, first index in the tensor, first index in the block, count)."""
        for name, size in self.sizes.items():
            first = self.starts[name]
            low, high = max(start, first), min(stop, first + size)
            if low < high:
                yield name, low - first, low - start, high - low

    def write(self, index: int, data: bytes) -> float:
        """Spool report ``index`` (safetensors bytes), clipped to ``clip``; returns its L2 norm."""
        diff = self.decode(data)
        norm = l2_norm(diff)
        factor = np.float32(clip_factor(norm, self.clip))
        flat = {name: np.asarray(diff[name]).reshape(-1) for name in self.spec}
        buffer = np.empty(self.width, dtype=np.float32)
        for start, stop in self.blocks():
            piece = buffer[: stop - start]
            for name, begin, at, count in self._segments(start, stop):
                piece[at:at + count] = flat[name][begin:begin + count]
            if factor != 1:
                piece *= factor
            offset = 4 * (start * self.reports + index * (stop - start))
            os.pwrite(self._fd, piece.tobytes(), offset)
        self.written += 1
        return norm

    def read_block(self, start: int, stop: int) -> np.ndarray:
        """The (reports × (stop − start)) float32 matrix of one block."""
        length = 4 * self.reports * (stop - start)
        raw = os.pread(self._fd, length, 4 * start * self.reports)
        if len(raw) != length:
            raise OSError(f"short read from the report spool ({len(raw)} of {length} bytes)")
        return np.frombuffer(raw, dtype=np.float32).reshape(self.reports, stop - start)

    def combine(self, aggregator: Aggregator) -> dict[str, np.ndarray]:
        """Apply a coordinate-wise rule block by block; float64 tensors shaped like the model."""
        if self.written != self.reports:
            raise ValueError(f"{self.written} of {self.reports} reports were spooled")
        result = {name: np.empty(shape, dtype=np.float64) for name, (shape, _) in self.spec.items()}
        flat = {name: array.reshape(-1) for name, array in result.items()}
        for start, stop in self.blocks():
            combined = aggregator.combine(self.read_block(start, stop))
            for name, begin, at, count in self._segments(start, stop):
                flat[name][begin:begin + count] = combined[at:at + count]
        return result
