"""Unmasking client frames with numpy instead of wsproto's byte-table masker.

Every frame a client sends is XOR-masked with a 4-byte key (RFC 6455 §5.3). wsproto undoes that
in `XorMaskerSimple` with four strided `bytes.translate` passes and a copy, on the hub: for a
1 MiB report over WebSocket, ~9 % of the Node's hub time per report (py-spy under
apps/node/benchmarks/ws_report_cost.py). One XOR of the payload as 32-bit words does the same in
a fraction of that. The replacement keeps wsproto's interface (`process(data)` returns the
unmasked bytes as a bytearray, and the key rotates so that the next chunk of the same frame
continues where this one stopped); `install` puts it in place of wsproto's class, and leaves
wsproto alone if that class is not where this was written against (wsproto 1.x).
"""

from __future__ import annotations

import logging

import numpy as np
from wsproto import frame_protocol

log = logging.getLogger("fedgrid.node.ws")
WSPROTO_MASKER = getattr(frame_protocol, "XorMaskerSimple", None)  # before `install` replaces it


class NumpyXorMasker:
    def __init__(self, masking_key: bytes | bytearray) -> None:
        self._masking_key = bytes(masking_key)

    def process(self, data: bytes | bytearray) -> bytearray:
        length = len(data)
        out = bytearray(length)
        if not length:
            return out
        key = self._masking_key
        words = length // 4 * 4
        if words:
            np.bitwise_xor(np.frombuffer(data, np.uint8, words).view(np.uint32),
                           np.frombuffer(key, np.uint32)[0],
                           out=np.frombuffer(out, np.uint8, words).view(np.uint32))
        for index in range(words, length):  # the last 0-3 bytes
            out[index] = data[index] ^ key[index - words]
        rotation = length % 4
        self._masking_key = key[rotation:] + key[:rotation]
        return out


def install() -> None:
    if WSPROTO_MASKER is None:
        log.warning("wsproto has no XorMaskerSimple: frames are unmasked by wsproto itself")
        return
    frame_protocol.XorMaskerSimple = NumpyXorMasker
