"""Shamir secret sharing over the prime field GF(p), p = 2^521 - 1 (a Mersenne prime).

Secrets are 32-byte strings (a seed, an X25519 private key) read as big-endian integers below
2^256 < p, so one field element holds one secret. The share for the device with cycle index i
(i >= 1) is f(i), where f is a random polynomial of degree t - 1 with f(0) = the secret; a share
travels as its value, 66 bytes big-endian. Any t shares give f(0) by Lagrange interpolation;
fewer say nothing about it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

PRIME = 2**521 - 1
SHARE_BYTES = 66  # ceil(521 / 8)
SECRET_BYTES = 32


def split(secret: bytes, holders: list[int], threshold: int) -> dict[int, bytes]:
    """Shares of `secret` for the holders' indices (distinct, >= 1); any `threshold` rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a secret is {SECRET_BYTES} bytes")
    if not 1 <= threshold <= len(holders):
        raise ValueError("the threshold must be between 1 and the number of holders")
    if len(set(holders)) != len(holders) or min(holders) < 1:
        raise ValueError("holders are distinct indices >= 1")
    coefficients = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(PRIME) for _ in range(threshold - 1)
    ]
    shares = {}
    for x in holders:
        y = 0
        for coefficient in reversed(coefficients):  # Horner
            y = (y * x + coefficient) % PRIME
        shares[x] = y.to_bytes(SHARE_BYTES, "big")
    return shares


def combine(shares: Mapping[int, bytes], threshold: int) -> bytes:
    """The secret from at least `threshold` shares (index -> share); ValueError if too few."""
    if len(shares) < threshold:
        raise ValueError(f"{len(shares)} shares cannot rebuild a secret that needs {threshold}")
    points = [(x, int.from_bytes(share, "big")) for x, share in list(shares.items())[:threshold]]
    if any(len(share) != SHARE_BYTES for share in shares.values()) or any(
        y >= PRIME for _, y in points
    ):
        raise ValueError("a share is not a field element")
    secret = 0
    for j, (xj, yj) in enumerate(points):
        numerator, denominator = 1, 1
        for m, (xm, _) in enumerate(points):
            if m != j:
                numerator = numerator * xm % PRIME
                denominator = denominator * (xm - xj) % PRIME
        secret = (secret + yj * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * SECRET_BYTES):
        raise ValueError("the shares do not rebuild a 32-byte secret (inconsistent shares)")
    return secret.to_bytes(SECRET_BYTES, "big")
