"""The plan container: a safetensors file with U8 graph tensors and a JSON manifest."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from fedgrid_plans import tensors
from fedgrid_plans.plan_file import METADATA_KEY, Plan, PlanFormatError, compute_content_hash


def test_round_trip_keeps_manifest_and_graphs(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    again = Plan.from_bytes(plan.to_bytes())
    assert again.manifest == plan.manifest
    assert again.graphs == plan.graphs
    assert set(plan.graphs) == {"train", "forward", "average"}


def test_plan_file_is_plain_safetensors(logistic_plan_bytes):
    arrays = tensors.decode(logistic_plan_bytes)
    assert sorted(arrays) == ["graph/average", "graph/forward", "graph/train"]
    assert all(a.dtype == np.uint8 and a.ndim == 1 for a in arrays.values())
    manifest = json.loads(tensors.decode_metadata(logistic_plan_bytes)[METADATA_KEY])
    assert manifest["format"] == "fedgrid.plan"
    assert manifest["format_version"] == 1


def test_content_hash_follows_the_spec(logistic_plan_bytes):
    """SPEC.md: sha256 over lines "<graph name> <sha256 hex of graph>\\n", sorted by name."""
    plan = Plan.from_bytes(logistic_plan_bytes)
    lines = "".join(f"{n} {hashlib.sha256(plan.graphs[n]).hexdigest()}\n" for n in sorted(plan.graphs))
    expected = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert plan.content_hash == expected == compute_content_hash(plan.graphs)
    for name, graph in plan.graphs.items():
        assert plan.manifest["graphs"][name]["sha256"] == hashlib.sha256(graph).hexdigest()
        assert plan.manifest["graphs"][name]["tensor"] == f"graph/{name}"


def test_sealed_drops_entries_for_missing_graphs(logistic_plan_bytes):
    plan = Plan.from_bytes(logistic_plan_bytes)
    del plan.graphs["forward"]
    sealed = plan.sealed()
    assert set(sealed.manifest["graphs"]) == {"train", "average"}
    assert sealed.content_hash != plan.content_hash


def _container(arrays: dict, metadata: dict | None) -> bytes:
    return tensors.encode(arrays, metadata=metadata)


GRAPH = np.frombuffer(b"onnx bytes", dtype=np.uint8)
NOT_PLANS = {
    "not safetensors": b"this is not a plan",
    "no manifest": _container({"graph/train": GRAPH}, None),
    "manifest not JSON": _container({"graph/train": GRAPH}, {METADATA_KEY: "{oops"}),
    "manifest not an object": _container({"graph/train": GRAPH}, {METADATA_KEY: "[1]"}),
    "unexpected tensor": _container({"graph/train": GRAPH, "weights": np.zeros(2, np.float32)}, {METADATA_KEY: "{}"}),
    "graph not U8": _container({"graph/train": np.zeros(2, np.float32)}, {METADATA_KEY: "{}"}),
    "graph not 1-D": _container({"graph/train": np.zeros((2, 2), np.uint8)}, {METADATA_KEY: "{}"}),
    "no training graph": _container({"graph/forward": GRAPH}, {METADATA_KEY: "{}"}),
}


@pytest.mark.parametrize("case", list(NOT_PLANS))
def test_from_bytes_refuses_what_is_not_a_plan(case):
    with pytest.raises(PlanFormatError):
        Plan.from_bytes(NOT_PLANS[case])
