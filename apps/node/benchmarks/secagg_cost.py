"""Secure aggregation's cost: upload bytes per device and the Node's CPU per cycle, against a
plain cycle, at 10, 50 and 100 simulated devices (the pure protocol core, no network).

Upload per device, as the wire carries it (docs/secure-aggregation.md): the keys and the shares
travel in JSON as base64 (4/3 of their bytes, plus the JSON around them, counted here), the
masked input as a raw body of 4 bytes per coordinate. The plain report is the float32 safetensors
diff. Goal: at most 2x the plain upload at 100 devices.

Node CPU (process time): a secure cycle's every Node-side call (relay keys, draw the graph,
relay share boxes, fold masked inputs, rebuild secrets, regenerate and take off the masks),
against folding the same number of float32 diffs into the plain running weighted sum. A tenth of
the devices (at least one) drop after sharing their keys, so the recovery of their pairwise masks
is in the figure.

    .venv/bin/python apps/node/benchmarks/secagg_cost.py [--length 100000] [--devices 10 50 100]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import time

import numpy as np

from fedgrid_node.cycles.aggregation import RunningWeightedSum
from fedgrid_plans import tensors
from fedgrid_protocol.secagg import SecAggAggregator, SecAggDevice, SecAggParams


def b64_json(mapping: dict) -> int:
    return len(json.dumps({str(k): base64.b64encode(v).decode() for k, v in mapping.items()}))


def secure_cycle(n: int, length: int, params: SecAggParams) -> dict[str, float]:
    rng = np.random.default_rng(0)
    updates = {i: rng.normal(scale=0.01, size=length).astype(np.float32) for i in range(1, n + 1)}
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in updates}
    dropping = set(random.Random(1).sample(sorted(devices), max(1, n // 10)))
    node = 0.0
    upload = {i: 0 for i in devices}

    def on_node(fn, *args):
        nonlocal node
        started = time.process_time()
        result = fn(*args)
        node += time.process_time() - started
        return result

    aggregator = on_node(SecAggAggregator, params, sorted(devices), length, random.Random(0))
    for i, device in devices.items():
        c, s = device.advertise_keys()
        upload[i] += b64_json({"c_public": c, "s_public": s})
        on_node(aggregator.receive_keys, i, c, s)
    roster, neighbours = on_node(aggregator.close_keys)
    for i, device in devices.items():
        boxes = device.share_keys(i, roster, neighbours[i])
        upload[i] += b64_json(boxes)
        on_node(aggregator.receive_shares, i, boxes)
    boxes = on_node(aggregator.close_shares)
    for i, device in devices.items():
        if i in dropping:
            continue
        masked = device.masked_input(updates[i], boxes[i])
        upload[i] += len(masked)
        on_node(aggregator.receive_masked_input, i, masked)
    survivors, dropped = on_node(aggregator.close_masked_inputs)
    for i in survivors:
        shares = devices[i].unmask(survivors, dropped)
        upload[i] += b64_json(shares)
        on_node(aggregator.receive_unmask, i, shares)
    total, count = on_node(aggregator.finish)
    plain = sum(updates[i].astype(np.float64) for i in survivors)
    assert count == len(survivors) and np.abs(total - plain).max() < count * 2 * 8 / 2**22
    return {"node_seconds": node, "upload_bytes": max(upload[i] for i in survivors),
            "degree": params.degree(n), "threshold": params.threshold(n)}


def plain_cycle(n: int, length: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    diffs = [{"w": rng.normal(scale=0.01, size=length).astype(np.float32)} for _ in range(n)]
    running = RunningWeightedSum({"w": ((length,), np.dtype(np.float32))})
    started = time.process_time()
    for diff in diffs:
        running.fold(tensors.decode(tensors.encode(diff)), 10)  # the Node decodes each report
    running.average()
    return {"node_seconds": time.process_time() - started,
            "upload_bytes": len(tensors.encode(diffs[0]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=100_000, help="coordinates per update")
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    params = SecAggParams()
    print(f"update of {args.length} float32 coordinates; SecAgg+ defaults (c=8, q=2^22, "
          f"m=2^32), 10% drop after sharing keys")
    print(f"{'devices':>7} {'k':>3} {'t':>3} {'plain B':>10} {'secure B':>10} {'upload x':>8} "
          f"{'plain CPU s':>11} {'secure CPU s':>12} {'CPU x':>7}")
    for n in args.devices:
        plain, secure = plain_cycle(n, args.length), secure_cycle(n, args.length, params)
        print(f"{n:>7} {secure['degree']:>3} {secure['threshold']:>3} "
              f"{plain['upload_bytes']:>10} {secure['upload_bytes']:>10} "
              f"{secure['upload_bytes'] / plain['upload_bytes']:>8.3f} "
              f"{plain['node_seconds']:>11.3f} {secure['node_seconds']:>12.3f} "
              f"{secure['node_seconds'] / max(plain['node_seconds'], 1e-9):>7.1f}")


if __name__ == "__main__":
    main()
