"""SecAgg parameters (server_config's `secure_aggregation`) and what they mean for a cohort.

Defaults follow Flower's SecAgg+ where it has one: clipping range 8, quantisation range 2^22,
modulus 2^32. Shares and threshold may be given as fractions (of the cohort, of the shares) so
one config fits any cohort size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_MODULUS_BITS = 32  # masks are drawn as uint32 words; a smaller power of two keeps low bits


@dataclass(frozen=True)
class SecAggParams:
    # Every coordinate of an update is clipped to [-clipping_range, clipping_range] ...
    clipping_range: float = 8.0
    # ... and mapped to an integer in [0, quantization_range) (stochastic rounding).
    quantization_range: int = 2**22
    # Masked inputs and their sum live in Z_modulus (a power of two, at most 2^32).
    modulus: int = 2**32
    # Shareholders per device (its neighbours in the graph): a fraction (0, 1] of the other
    # cohort members, a count >= 2, or None for the O(log n) default 2 * ceil(log2 n).
    num_shares: float | int | None = None
    # Shares needed to reconstruct a device's secret: a fraction (0, 1] of num_shares or a count;
    # never fewer than a strict majority of the shares.
    reconstruction_threshold: float | int = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clipping_range) and self.clipping_range > 0):
            raise ValueError("clipping_range must be a positive number")
        bits = self.modulus.bit_length() - 1
        if self.modulus != 1 << bits or not 8 <= bits <= MAX_MODULUS_BITS:
            raise ValueError("modulus must be a power of two between 2^8 and 2^32")
        if not 2 <= self.quantization_range <= self.modulus // 2:
            raise ValueError("quantization_range must be between 2 and modulus / 2")
        if self.num_shares is not None:
            _check_count_or_fraction("num_shares", self.num_shares, minimum=2)
        _check_count_or_fraction("reconstruction_threshold", self.reconstruction_threshold,
                                 minimum=1)

    def max_cohort(self) -> int:
        """The most devices whose quantised inputs sum without wrapping around the modulus."""
        return (self.modulus - 1) // (self.quantization_range - 1)

    def degree(self, cohort: int) -> int:
        """k: each device's neighbours (and shareholders) in a cohort of `cohort` devices."""
        others = cohort - 1
        if others < 1:
            raise ValueError("secure aggregation needs at least 2 devices")
        if self.num_shares is None:
            wanted = 2 * math.ceil(math.log2(cohort))
        elif isinstance(self.num_shares, float) and self.num_shares <= 1:
            wanted = math.ceil(self.num_shares * others)
        else:
            wanted = int(self.num_shares)
        k = max(1, min(others, wanted))
        # The circulant graph (graph.py) needs an even degree unless it is complete.
        if k < others and k % 2:
            k += 1
        return k

    def threshold(self, cohort: int) -> int:
        """t: shares that reconstruct a secret (a strict majority of the k shares at least)."""
        k = self.degree(cohort)
        if isinstance(self.reconstruction_threshold, float) and self.reconstruction_threshold <= 1:
            wanted = math.ceil(self.reconstruction_threshold * k)
        else:
            wanted = int(self.reconstruction_threshold)
        return min(k, max(k // 2 + 1, wanted))

    def check_cohort(self, cohort: int) -> None:
        if not 2 <= cohort <= self.max_cohort():
            raise ValueError(f"a secure cohort has 2 to {self.max_cohort()} devices with these "
                             f"parameters (quantization_range and modulus), not {cohort}")


def _check_count_or_fraction(name: str, value: float | int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if isinstance(value, float) and not (0 < value <= 1) and not (value.is_integer() and value >= minimum):
        raise ValueError(f"{name} must be a fraction in (0, 1] or a count >= {minimum}")
    if isinstance(value, int) and value < minimum:
        raise ValueError(f"{name} must be a fraction in (0, 1] or a count >= {minimum}")
