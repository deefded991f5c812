"""The secure rounds' binary fields match the shared vector (plans/conformance/secagg_wire/),
which the JavaScript SDK matches too, and the vector is what the layout gives today."""

from __future__ import annotations

import json

from fedgrid_protocol.secagg import wire

from .secagg_wire_vector import VECTOR, vector_text


def test_the_vector_is_current():
    assert (VECTOR / "cases.json").read_text() == vector_text()


def test_the_python_sdk_writes_and_reads_the_vector_byte_for_byte():
    cases = json.loads((VECTOR / "cases.json").read_text())
    for case in cases["public_keys"]:
        c_public, s_public = bytes.fromhex(case["c_public"]), bytes.fromhex(case["s_public"])
        assert wire.encode_keys(c_public, s_public).hex() == case["encoded"]
        assert wire.decode_keys(bytes.fromhex(case["encoded"])) == (c_public, s_public)
    for case in cases["entries"]:
        values = {int(i): bytes.fromhex(value) for i, value in case["values"].items()}
        assert wire.encode_entries(values).hex() == case["encoded"]
        assert wire.decode_entries(bytes.fromhex(case["encoded"])) == values
