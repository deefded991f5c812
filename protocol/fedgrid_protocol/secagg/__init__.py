"""Secure aggregation (SecAgg+) for one cycle: the pure protocol, no I/O.

The Node learns the sum of the cycle's quantised updates and nothing about any single one,
provided it follows the protocol (honest-but-curious) and enough devices survive each round.
The design follows Bonawitz et al. 2017 ("Practical secure aggregation for privacy-preserving
machine learning") with the sparse neighbour graph of Bell et al. 2020 ("Secure single-server
aggregation with (poly)logarithmic overhead"): each device masks its update with pairwise masks
shared with k = O(log n) neighbours only, and Shamir-shares its secrets among those neighbours.

Modules, each one responsibility:
- `params`: the parameters a server_config may set, and the counts derived for a cohort;
- `quantize`: float update <-> integers mod 2^32 (clipping, stochastic rounding);
- `shamir`: Shamir secret sharing over the prime field GF(2^521 - 1);
- `crypto`: X25519 key agreement, HKDF-SHA256, AES-256-GCM share boxes, the AES-CTR mask PRG;
- `graph`: the k-regular neighbour graph the Node draws over the cohort;
- `device`: one device's side of the four rounds;
- `aggregator`: the Node's side, which folds masked inputs into one running sum as they arrive
  and never holds an individual update, masked or not (its caller may store the masked
  messages to replay them after a restart: each is masked on its own).

docs/secure-aggregation.md specifies every byte so that another SDK can reproduce it.
"""

from importlib import import_module
from typing import Any

# Imported on first use: `params` needs nothing beyond the standard library, so validating a
# server_config (configs.py) works without the `secagg` extra (cryptography, numpy).
_HOMES = {"SecAggAborted": "aggregator", "SecAggAggregator": "aggregator",
          "SecAggDevice": "device", "SecAggParams": "params"}

__all__ = ["SecAggAborted", "SecAggAggregator", "SecAggDevice", "SecAggParams"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
