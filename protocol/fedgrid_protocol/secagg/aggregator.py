"""The Node's side of a secure cycle: it relays keys and share boxes, sums masked inputs, and
rebuilds just enough secrets to take the masks off the sum.

What it holds (and a test reads it to make sure): public keys, share boxes it cannot open,
ONE running sum of masked inputs (each input is added the moment it arrives and not kept), the
Shamir shares sent in the unmask round and the secrets rebuilt from them (self-mask seeds of
survivors, s keys of devices that dropped). Never an individual update, masked or not. (The
Node's caller may store each message to replay it after a restart: a masked input alone is
uniformly random to whoever lacks its masks' secrets.)

Each `receive_*` has a `check_*` that refuses (ValueError) exactly what it would refuse, without
changing anything: a caller can check a message, make it durable, and only then take it in.
Given the same `rng` state, the same messages and the same closes, the rounds come out the same
(the neighbour graph is the only draw): replaying stored messages rebuilds them.

Rounds close when the Node's engine says so (everyone answered, or a round timeout): devices
missing from a round drop out of the cycle. `SecAggAborted` says the cycle cannot complete
securely; its `code` is a stable error code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np

from . import crypto, shamir
from .graph import neighbour_graph
from .params import SecAggParams
from .quantize import dequantize_sum


class SecAggAborted(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SecAggAggregator:
    ADVERTISE, SHARE, MASKED_INPUT, UNMASK, DONE = range(1, 6)

    def __init__(self, params: SecAggParams, cohort: list[int], length: int,
                 rng: random.Random | None = None) -> None:
        """`cohort`: the devices' cycle indices (>= 1); `length`: coordinates in an update."""
        if len(set(cohort)) != len(cohort) or min(cohort, default=0) < 1:
            raise ValueError("cohort indices are distinct and >= 1")
        params.check_cohort(len(cohort))
        self.params = params
        self.cohort = sorted(cohort)
        self.length = length
        self._rng = rng or random.SystemRandom()
        self.round = self.ADVERTISE
        self.keys: dict[int, tuple[bytes, bytes]] = {}  # U1: index -> (c public, s public)
        self.neighbours: dict[int, list[int]] = {}
        self.threshold = 0
        self._boxes: dict[int, dict[int, bytes]] = {}  # recipient -> sender -> box
        self.shared: set[int] = set()  # U2
        self._sum = np.zeros(length, dtype=np.uint32)  # masked inputs, added mod 2^32
        self.masked: set[int] = set()  # U3
        self._shares: dict[int, dict[int, bytes]] = {}  # owner -> holder -> share
        self.unmasked: set[int] = set()  # U4

    def _expect(self, round_number: int, index: int, allowed: set[int] | list[int]) -> None:
        if self.round != round_number:
            raise ValueError("this secure aggregation round is closed")
        if index not in allowed:
            raise ValueError(f"device {index} takes no part in this round")

    # -------------------------------------------------------------------- 1: advertise keys

    def check_keys(self, index: int, c_public: bytes, s_public: bytes) -> None:
        self._expect(self.ADVERTISE, index, self.cohort)
        if len(c_public) != crypto.KEY_BYTES or len(s_public) != crypto.KEY_BYTES:
            raise ValueError("public keys are 32 bytes")

    def receive_keys(self, index: int, c_public: bytes, s_public: bytes) -> None:
        self.check_keys(index, c_public, s_public)
        self.keys[index] = (bytes(c_public), bytes(s_public))

    def close_keys(self) -> tuple[dict[int, tuple[bytes, bytes]], dict[int, list[int]]]:
        """The roster (to every device in it) and each device's neighbours."""
        self._check_enough(len(self.keys), "advertised keys")
        self.params.check_cohort(len(self.keys))
        indices = sorted(self.keys)
        self.neighbours = neighbour_graph(indices, self.params.degree(len(indices)), self._rng)
        self.threshold = self.params.threshold(len(indices))
        self.round = self.SHARE
        return dict(self.keys), self.neighbours

    # -------------------------------------------------------------------- 2: share keys

    def check_shares(self, index: int, boxes: Mapping[int, bytes]) -> None:
        self._expect(self.SHARE, index, self.keys.keys())
        if set(boxes) != set(self.neighbours[index]):
            raise ValueError("share boxes go to exactly the device's neighbours")

    def receive_shares(self, index: int, boxes: Mapping[int, bytes]) -> None:
        self.check_shares(index, boxes)
        for recipient, box in boxes.items():
            self._boxes.setdefault(recipient, {})[index] = bytes(box)
        self.shared.add(index)

    def close_shares(self) -> dict[int, dict[int, bytes]]:
        """Per device of U2: the boxes its neighbours in U2 sent it (sender -> box)."""
        self._check_enough(len(self.shared), "shared keys")
        self.round = self.MASKED_INPUT
        return {u: {v: box for v, box in self._boxes.get(u, {}).items() if v in self.shared}
                for u in sorted(self.shared)}

    # -------------------------------------------------------------------- 3: masked input

    def check_masked_input(self, index: int, data: bytes) -> None:
        self._expect(self.MASKED_INPUT, index, self.shared)
        if index in self.masked:
            raise ValueError("this device already sent its masked input")
        if len(data) != 4 * self.length:
            raise ValueError(f"a masked input is {4 * self.length} bytes")
        masked = np.frombuffer(data, dtype="<u4")
        if self.params.modulus != 2**32 and int(masked.max(initial=0)) >= self.params.modulus:
            raise ValueError("a masked input is not in Z_modulus")

    def receive_masked_input(self, index: int, data: bytes) -> None:
        self.check_masked_input(index, data)
        masked = np.frombuffer(data, dtype="<u4")
        self._sum += masked  # folded at once: no individual input is kept
        self.masked.add(index)

    def close_masked_inputs(self) -> tuple[list[int], list[int]]:
        """(survivors, dropped) for the unmask request: U3, and U2 minus U3."""
        self._check_enough(len(self.masked), "sent masked inputs")
        self.round = self.UNMASK
        return sorted(self.masked), sorted(self.shared - self.masked)

    # -------------------------------------------------------------------- 4: unmask

    def check_unmask(self, index: int, shares: Mapping[int, bytes]) -> None:
        self._expect(self.UNMASK, index, self.masked)
        # A holder answers for exactly the neighbours whose boxes it was given.
        if set(shares) != set(self._boxes.get(index, {})) & self.shared:
            raise ValueError("unmask shares are for exactly the neighbours that shared with "
                             "this device")
        if any(len(share) != shamir.SHARE_BYTES for share in shares.values()):
            raise ValueError("a share is 66 bytes")

    def receive_unmask(self, index: int, shares: Mapping[int, bytes]) -> None:
        self.check_unmask(index, shares)
        for owner, share in shares.items():
            self._shares.setdefault(owner, {})[index] = bytes(share)
        self.unmasked.add(index)

    def finish(self) -> tuple[np.ndarray, int]:
        """(the dequantised sum of the survivors' updates as float64, how many they are)."""
        total, count = self.unmasked_sum()
        return dequantize_sum(total, count, self.params), count

    def unmasked_sum(self) -> tuple[np.ndarray, int]:
        """(the sum of the survivors' quantised updates mod the modulus, how many they are)."""
        if self.round != self.UNMASK:
            raise ValueError("the sum is unmasked after the unmask round")
        self.round = self.DONE
        total = self._sum.copy()
        dropped = self.shared - self.masked
        for v in sorted(self.masked):
            seed = self._rebuild(v)
            total -= crypto.mask(seed, self.length, self.params.modulus)
        for d in sorted(dropped):
            s_key = crypto.KeyPair(self._rebuild(d))
            if s_key.public != self.keys[d][1]:
                raise SecAggAborted("secagg_aborted",
                                    f"the shares of device {d}'s key do not rebuild it")
            for u in self.neighbours[d]:
                if u not in self.masked:
                    continue
                pairwise = crypto.mask(s_key.agree(self.keys[u][1], crypto.MASK_INFO),
                                       self.length, self.params.modulus)
                # u added +mask if u < d, -mask otherwise: take off what u put on.
                if u < d:
                    total -= pairwise
                else:
                    total += pairwise
        if self.params.modulus != 2**32:
            total &= np.uint32(self.params.modulus - 1)
        return total, len(self.masked)

    def _rebuild(self, owner: int) -> bytes:
        shares = self._shares.get(owner, {})
        if len(shares) < self.threshold:
            raise SecAggAborted(
                "secagg_aborted",
                f"only {len(shares)} of device {owner}'s neighbours answered the unmask round; "
                f"{self.threshold} are needed to take its masks off the sum")
        try:
            return shamir.combine(shares, self.threshold)
        except ValueError:  # a share out of the field, or shares of different polynomials
            raise SecAggAborted("secagg_aborted",
                                f"the shares of device {owner}'s secret do not rebuild it") from None

    def _check_enough(self, count: int, what: str) -> None:
        minimum = max(2, self.threshold)
        if count < minimum:
            raise SecAggAborted("secagg_aborted",
                                f"only {count} devices {what}; a secure sum needs {minimum}")
