"""The numpy unmasker gives wsproto's bytes, chunk after chunk, whatever the lengths and keys."""

from __future__ import annotations

import random

import pytest
from wsproto import frame_protocol

from fedgrid_node.model_centric import ws_masking


@pytest.mark.parametrize("seed", range(20))
def test_unmasking_matches_wsproto_across_chunks(seed):
    rng = random.Random(seed)
    key = bytes(rng.randrange(256) for _ in range(4))
    ours, theirs = ws_masking.NumpyXorMasker(key), ws_masking.WSPROTO_MASKER(key)
    # A frame's payload arrives in chunks of any length (0-3 byte tails included).
    for length in [rng.choice([0, 1, 2, 3, 5, 7, 64, 1023, 65536, 65539]) for _ in range(12)]:
        chunk = rng.randbytes(length)
        assert bytes(ours.process(chunk)) == bytes(theirs.process(chunk))


def test_installed_in_place_of_wsproto_s_masker(tmp_path):
    from fedgrid_node.app import create_app
    from fedgrid_node.config import NodeConfig

    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="t"))
    try:
        assert frame_protocol.XorMaskerSimple is ws_masking.NumpyXorMasker
    finally:
        app.extensions["fedgrid"].engine.stop()
