"""``describe(plan)``: what a plan takes, returns and computes, for people and for dashboards.

Torch- and onnxruntime-free, so the Node can show it for any hosted plan.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import onnx

from fedgrid_plans.plan_file import Plan


@dataclass
class GraphDescription:
    name: str
    inputs: list[dict]
    outputs: list[dict]
    ops: dict[str, int]  # "Domain::OpType" (default domain as bare OpType) -> node count
    opset: int


@dataclass
class PlanDescription:
    """Everything ``describe`` reports; ``str()`` renders it as text."""

    name: str
    format_version: int
    content_hash: str
    parameter_count: int
    parameters: list[dict]
    training: dict
    defaults: dict
    graphs: dict[str, GraphDescription] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"plan {self.name!r} (format {self.format_version}, {self.content_hash})",
            f"parameters: {self.parameter_count:,} in {len(self.parameters)} tensors",
        ]
        lines += [f"  {p['name']}: {p['dtype']}{p['shape']}" for p in self.parameters]
        if self.training:
            lines.append("training: " + ", ".join(f"{k}={v}" for k, v in self.training.items()))
        if self.defaults:
            lines.append("defaults: " + ", ".join(f"{k}={v}" for k, v in self.defaults.items()))
        for graph in self.graphs.values():
            lines.append(f"graph {graph.name!r} (opset {graph.opset}, {sum(graph.ops.values())} nodes)")
            for title, entries in (("inputs", graph.inputs), ("outputs", graph.outputs)):
                lines.append(f"  {title}:")
                lines += [f"    {e['name']}: {e['dtype']}{e['shape']} [{e['role']}]" for e in entries]
            lines.append("  ops: " + ", ".join(f"{op} x{count}" for op, count in sorted(graph.ops.items())))
        return "\n".join(lines)


def describe(plan: Plan | bytes) -> PlanDescription:
    """Describe a plan (a :class:`Plan` or plan file bytes); ``print(describe(plan))`` to read it."""
    plan = plan if isinstance(plan, Plan) else Plan.from_bytes(plan)
    manifest = plan.manifest
    parameters = list(manifest.get("parameters", []))
    graphs = {}
    for name, graph_bytes in plan.graphs.items():
        model = onnx.load_from_string(graph_bytes)
        ops = Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in model.graph.node)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        section = manifest.get(name, {})
        graphs[name] = GraphDescription(name, list(section.get("inputs", [])), list(section.get("outputs", [])), dict(ops), opset)
    return PlanDescription(
        name=str(manifest.get("name", "")),
        format_version=int(manifest.get("format_version", 0)),
        content_hash=str(manifest.get("content_hash", "")),
        parameter_count=sum(math.prod(p["shape"]) for p in parameters),
        parameters=parameters,
        training=dict(manifest.get("training", {})),
        defaults=dict(manifest.get("defaults", {})),
        graphs=graphs,
    )
