"""One device's side of a secure cycle: four calls, one per round, in order.

1. `advertise_keys()`: two fresh X25519 public keys: c (to box shares) and s (to agree masks).
2. `share_keys(index, roster, neighbours, advertised)`: Shamir shares of the self-mask seed b and of the s
   private key, one box per neighbour, for the Node to forward.
3. `masked_input(update, boxes)`: the quantised update plus PRG(b) plus, for each neighbour v
   that shared with us, +PRG(s_uv) if our index is below v's and -PRG(s_uv) otherwise (so each
   pair's masks cancel in the sum), all mod the modulus.
4. `unmask(survivors, dropped)`: for each neighbour that shared with us, the share of its b if it
   survived (its self-mask must come off the sum) or of its s key if it dropped (its pairwise
   masks with the survivors must come off). Never both for one device: the Node holding b_v and
   s_v could strip every mask off v's input.

The device decides the cohort-dependent counts (k, t) itself from the parameters and the roster
size, and refuses a Node's message that contradicts them.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

import numpy as np

from . import crypto, shamir
from .params import SecAggParams
from .quantize import quantize

SHARE_PLAINTEXT = struct.Struct(">II")  # sender, recipient; then the b share and the s-key share


class SecAggDevice:
    def __init__(self, params: SecAggParams, rng: np.random.Generator | None = None) -> None:
        self.params = params
        self._rng = rng or np.random.default_rng()
        self._c = crypto.KeyPair()
        self._s = crypto.KeyPair()
        self._b = os.urandom(crypto.KEY_BYTES)
        self.index: int | None = None
        self._roster: dict[int, tuple[bytes, bytes]] = {}
        self._neighbours: list[int] = []
        self._threshold = 0
        self._held: dict[int, tuple[bytes, bytes]] = {}  # sender -> (its b share, its s share)
        self._round = 1

    def _enter(self, round_number: int) -> None:
        if self._round != round_number:
            raise ValueError(f"secure aggregation round {round_number} out of order")
        self._round += 1

    def advertise_keys(self) -> tuple[bytes, bytes]:
        self._enter(1)
        return self._c.public, self._s.public

    def share_keys(self, index: int, roster: Mapping[int, tuple[bytes, bytes]],
                   neighbours: list[int], advertised: int | None = None) -> dict[int, bytes]:
        """`roster`: index -> (c public, s public), of every device that advertised keys or
        only of this device and its neighbours (the only keys it uses), in which case
        `advertised` is how many devices advertised (k and t follow from that count)."""
        self._enter(2)
        cohort = len(roster) if advertised is None else advertised
        if cohort < len(roster):
            raise ValueError("the roster holds more devices than advertised keys")
        self.params.check_cohort(cohort)
        if roster.get(index) != (self._c.public, self._s.public):
            raise ValueError("the roster does not carry this device's keys at its index")
        if (index in neighbours or len(set(neighbours)) != len(neighbours)
                or not set(neighbours) <= set(roster)
                or len(neighbours) != self.params.degree(cohort)):
            raise ValueError("the neighbour list does not fit the roster and parameters")
        if len({public for pair in roster.values() for public in pair}) != 2 * len(roster):
            raise ValueError("the roster repeats a key")
        self.index, self._roster, self._neighbours = index, dict(roster), sorted(neighbours)
        self._threshold = self.params.threshold(cohort)
        b_shares = shamir.split(self._b, self._neighbours, self._threshold)
        s_shares = shamir.split(self._s.private, self._neighbours, self._threshold)
        boxes = {}
        for v in self._neighbours:
            key = self._c.agree(roster[v][0], crypto.SHARE_KEY_INFO)
            plaintext = SHARE_PLAINTEXT.pack(index, v) + b_shares[v] + s_shares[v]
            boxes[v] = crypto.seal(key, index, v, plaintext)
        return boxes

    def masked_input(self, update: np.ndarray, boxes: Mapping[int, bytes]) -> bytes:
        """`update`: the flat float vector; `boxes`: sender -> its box for us (from round 2)."""
        self._enter(3)
        if not set(boxes) <= set(self._neighbours):
            raise ValueError("a share box comes from a device that is not a neighbour")
        for v, box in boxes.items():
            key = self._c.agree(self._roster[v][0], crypto.SHARE_KEY_INFO)
            plaintext = crypto.open_box(key, v, self.index, box)
            size = shamir.SHARE_BYTES
            if (len(plaintext) != SHARE_PLAINTEXT.size + 2 * size
                    or SHARE_PLAINTEXT.unpack_from(plaintext) != (v, self.index)):
                raise ValueError(f"the share box from {v} is malformed")
            body = plaintext[SHARE_PLAINTEXT.size:]
            self._held[v] = (body[:size], body[size:])
        if len(self._held) < self._threshold:
            # Our own secrets could not be rebuilt if we dropped: fewer neighbours shared with
            # us than a reconstruction needs, so the cycle cannot complete securely.
            raise ValueError("too few neighbours shared keys for a secure sum")
        flat = np.asarray(update, dtype=np.float64).reshape(-1)
        length, modulus = flat.size, self.params.modulus
        masked = quantize(flat, self.params, self._rng)
        masked += crypto.mask(self._b, length, modulus)  # uint32 arithmetic wraps mod 2^32
        for v in self._held:
            pairwise = crypto.mask(self._s.agree(self._roster[v][1], crypto.MASK_INFO), length,
                                   modulus)
            if self.index < v:
                masked += pairwise
            else:
                masked -= pairwise
        if modulus != 2**32:
            masked &= np.uint32(modulus - 1)
        return masked.astype("<u4").tobytes()

    def unmask(self, survivors: list[int], dropped: list[int]) -> dict[int, bytes]:
        """Shares for the Node: sender -> the share of its b (survived) or its s key (dropped)."""
        self._enter(4)
        alive, gone = set(survivors), set(dropped)
        if alive & gone or self.index not in alive:
            raise ValueError("a device cannot have both survived and dropped")
        if len(alive) < self._threshold:
            raise ValueError("too few survivors: their sum would say too much about each one")
        if not set(self._held) <= alive | gone:
            raise ValueError("a neighbour that shared keys is neither a survivor nor dropped")
        return {v: b_share if v in alive else s_share
                for v, (b_share, s_share) in self._held.items()}
