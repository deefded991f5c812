"""The plan file: a manifest (JSON) plus ONNX graphs, stored as one safetensors file.

Why safetensors as the container: every Fedgrid SDK already parses safetensors for checkpoints and
diffs, so a plan needs no second parser. Each ONNX graph is a 1-D ``U8`` tensor named
``graph/<name>`` and the manifest is a JSON string under ``__metadata__["fedgrid.plan"]``.
See ``plans/SPEC.md`` for every manifest field.

This module only parses and writes the container; whether a plan is *safe to host* (hash, op
allow-list, shapes) is :mod:`fedgrid_plans.validation`'s job.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fedgrid_plans import tensors

FORMAT_NAME = "fedgrid.plan"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({1})
METADATA_KEY = "fedgrid.plan"
GRAPH_TENSOR_PREFIX = "graph/"
# Graphs a plan may carry; "train" is required, the others optional (see SPEC.md).
GRAPH_NAMES = ("train", "forward", "average")
BATCH_DIM = "batch"


class PlanFormatError(ValueError):
    """The bytes are not a plan file: not safetensors, no manifest, or graphs missing."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_content_hash(graphs: Mapping[str, bytes]) -> str:
    """``"sha256:" + hex(sha256(lines))`` where lines are ``"<graph name> <sha256 hex>\\n"``
    sorted by graph name. Defined over the graphs (what executes), not the manifest JSON, so any
    SDK can recompute it without canonical-JSON rules."""
    lines = "".join(f"{name} {sha256_hex(graphs[name])}\n" for name in sorted(graphs))
    return "sha256:" + sha256_hex(lines.encode("utf-8"))


@dataclass
class Plan:
    """A parsed plan: the manifest dict and the ONNX graphs (serialized ``ModelProto`` bytes)."""

    manifest: dict
    graphs: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))

    @property
    def content_hash(self) -> str:
        return str(self.manifest.get("content_hash", ""))

    @property
    def parameters(self) -> list[dict]:
        """Parameter specs ``{"name", "dtype", "shape"}`` in checkpoint order."""
        return list(self.manifest.get("parameters", []))

    def sealed(self) -> Plan:
        """A copy whose manifest records each graph's sha256 and the content hash of all graphs."""
        manifest = copy.deepcopy(self.manifest)
        entries = manifest.setdefault("graphs", {})
        for name, graph in self.graphs.items():
            entry = entries.setdefault(name, {})
            entry["tensor"] = GRAPH_TENSOR_PREFIX + name
            entry["sha256"] = sha256_hex(graph)
        for name in list(entries):
            if name not in self.graphs:
                del entries[name]
        manifest["content_hash"] = compute_content_hash(self.graphs)
        return Plan(manifest=manifest, graphs=dict(self.graphs))

    def to_bytes(self) -> bytes:
        """The plan file: graphs as ``U8`` tensors, the manifest in ``__metadata__``. Written as
        is; call :meth:`sealed` first so the hashes match the graphs."""
        arrays = {
            GRAPH_TENSOR_PREFIX + name: np.frombuffer(graph, dtype=np.uint8)
            for name, graph in self.graphs.items()
        }
        manifest_json = json.dumps(self.manifest, separators=(",", ":"), sort_keys=False)
        return tensors.encode(arrays, metadata={METADATA_KEY: manifest_json})

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Plan:
        """Parse a plan file. Raises :class:`PlanFormatError` if it is not one."""
        try:
            arrays, metadata = tensors.decode_with_metadata(data)
        except tensors.TensorFormatError as exc:
            raise PlanFormatError(f"plan file is not a valid safetensors container: {exc}") from None
        if METADATA_KEY not in metadata:
            raise PlanFormatError(f'plan file has no manifest (__metadata__["{METADATA_KEY}"])')
        try:
            manifest = json.loads(metadata[METADATA_KEY])
        except RecursionError:
            raise PlanFormatError("plan manifest is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
            raise PlanFormatError(f"plan manifest is not JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise PlanFormatError("plan manifest is not a JSON object")
        graphs: dict[str, bytes] = {}
        for tensor_name, array in arrays.items():
            if not tensor_name.startswith(GRAPH_TENSOR_PREFIX):
                raise PlanFormatError(f"plan file holds an unexpected tensor {tensor_name!r}")
            if array.dtype != np.uint8 or array.ndim != 1:
                raise PlanFormatError(f"plan graph {tensor_name!r} must be a 1-D U8 tensor")
            graphs[tensor_name[len(GRAPH_TENSOR_PREFIX) :]] = array.tobytes()
        if "train" not in graphs:
            raise PlanFormatError("plan file has no training graph (tensor 'graph/train')")
        return cls(manifest=manifest, graphs=graphs)
