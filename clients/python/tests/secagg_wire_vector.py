"""The shared secure-aggregation wire vector (plans/conformance/secagg_wire/): the binary fields
of the secure rounds (fedgrid_protocol.secagg.wire) for given inputs, which both SDKs must write
byte for byte: `public_keys` (advertise-keys) and entries (share-keys' `boxes`, unmask's
`shares`). The JavaScript SDK checks it in clients/js/test/secagg.test.js.

Regenerate with ``python -m tests.secagg_wire_vector`` from clients/python (only when the layout
changes: the file is the contract, and test_secagg_wire_vector.py checks it is current).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedgrid_protocol.secagg import wire

VECTOR = Path(__file__).resolve().parents[3] / "plans" / "conformance" / "secagg_wire"


def _bytes(rng: np.random.Generator, size: int) -> bytes:
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def expected_cases() -> dict:
    rng = np.random.default_rng(14)
    c_public, s_public = _bytes(rng, 32), _bytes(rng, 32)
    # Share boxes (168 bytes) and shares (66) under indices whose text order is not their
    # numeric order (17 sorts before 2 as text), over one, two and three bytes, up to the largest.
    maps = [
        {17: _bytes(rng, 168), 2: _bytes(rng, 168), 5: _bytes(rng, 168)},
        {99999: _bytes(rng, 66), 1: _bytes(rng, 66), 300: _bytes(rng, 66), 70000: _bytes(rng, 66)},
        {3: b"\x00"},
    ]
    return {
        "public_keys": [{"c_public": c_public.hex(), "s_public": s_public.hex(),
                         "encoded": wire.encode_keys(c_public, s_public).hex()}],
        "entries": [{"values": {str(i): value.hex() for i, value in values.items()},
                     "encoded": wire.encode_entries(values).hex()} for values in maps],
    }


def vector_text() -> str:
    return json.dumps(expected_cases(), indent=2) + "\n"


def write_vector() -> None:
    VECTOR.mkdir(parents=True, exist_ok=True)
    (VECTOR / "cases.json").write_text(vector_text())


if __name__ == "__main__":
    write_vector()
    print(f"wrote {VECTOR}")
