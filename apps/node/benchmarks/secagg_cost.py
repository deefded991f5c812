"""Secure aggregation's cost: upload bytes per device and the Node's CPU per cycle, against a
plain cycle, at 10, 50 and 100 simulated devices (the pure protocol core, no network).

Upload per device, as the wire carries it (docs/secure-aggregation.md): each round's message is
made by the Python SDK's own `fedgrid.secagg.round_message` and counted as the body its
transport sends: the keys, the share boxes and the unmask shares as one binary field each, the masked
input as 4 bytes per coordinate. `legacy B` is what older SDKs sent for the same messages: the
keys, boxes and shares as base64 in JSON (the ids left out, as they are on every side). The
plain report is the float32 safetensors diff. Goal: at most 2x the plain upload at 100 devices.
The identifiers in each request's query string and the `secagg-round` polls (about 150 bytes
each, at least four per cycle) are not counted on either side.

Download per device beyond the checkpoint (which a plain device downloads too): the
`secagg-round` answers that carry data, as the Node writes them (compact JSON, bytes in base64):
share-keys with the whole roster (older SDKs) or only the device's and its neighbours' keys (what
both SDKs now ask for), masked-input with its share boxes, unmask with the survivors and dropped.

Node CPU (process time): a secure cycle's every Node-side call (relay keys, draw the graph,
relay share boxes, fold masked inputs, rebuild secrets, regenerate and take off the masks),
against folding the same number of float32 diffs into the plain running weighted sum. A tenth of
the devices (at least one) drop after sharing their keys, so the recovery of their pairwise masks
is in the figure.

    .venv/bin/python apps/node/benchmarks/secagg_cost.py [--length 1000 100000] [--devices 10 100]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import time

import numpy as np

from fedgrid.secagg import round_message
from fedgrid_node.cycles.aggregation import RunningWeightedSum
from fedgrid_plans import tensors
from fedgrid_protocol.secagg import SecAggAggregator, SecAggDevice, SecAggParams, wire


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def legacy_json(fields: dict) -> int:
    """An older SDK's JSON body for the same message: bytes as base64, maps as objects."""
    def text(value):
        return ({str(k): b64(v) for k, v in value.items()} if isinstance(value, dict)
                else b64(value))
    return len(json.dumps({k: text(v) for k, v in fields.items()}))


def answer_json(answer: dict) -> int:
    return len(json.dumps(answer, separators=(",", ":")))  # Flask's compact JSON


def secure_cycle(n: int, length: int, params: SecAggParams) -> dict[str, float]:
    rng = np.random.default_rng(0)
    updates = {i: rng.normal(scale=0.01, size=length).astype(np.float32) for i in range(1, n + 1)}
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in updates}
    dropping = set(random.Random(1).sample(sorted(devices), max(1, n // 10)))
    node = 0.0
    upload = {i: 0 for i in devices}
    legacy = {i: 0 for i in devices}
    download = {i: 0 for i in devices}
    download_all = {i: 0 for i in devices}

    def on_node(fn, *args):
        nonlocal node
        started = time.process_time()
        result = fn(*args)
        node += time.process_time() - started
        return result

    def send(i: int, stage: str, view: dict, update=None) -> bytes:
        """The SDK's message for a round: its one body, counted as sent."""
        _, _, blobs = round_message(devices[i], stage, view, {}, update)
        (body,) = blobs.values()
        upload[i] += len(body)
        return body

    aggregator = on_node(SecAggAggregator, params, sorted(devices), length, random.Random(0))
    for i in devices:
        c, s = wire.decode_keys(send(i, "advertise-keys", {}))
        legacy[i] += legacy_json({"c_public": c, "s_public": s})
        on_node(aggregator.receive_keys, i, c, s)
    roster, neighbours = on_node(aggregator.close_keys)
    everyone = {str(v): [b64(c), b64(s)] for v, (c, s) in roster.items()}
    for i in devices:
        view = {"status": "success", "round": "share-keys", "index": i, "cohort": n,
                "sent": False, "timeout": 30.0, "neighbours": neighbours[i],
                "advertised": len(roster),
                "roster": {str(v): everyone[str(v)] for v in sorted([i, *neighbours[i]])}}
        download[i] += answer_json(view)
        download_all[i] += answer_json({**view, "roster": everyone})
        boxes = wire.decode_entries(send(i, "share-keys", view))
        legacy[i] += legacy_json({"boxes": boxes})
        on_node(aggregator.receive_shares, i, boxes)
    boxes = on_node(aggregator.close_shares)
    for i in devices:
        if i in dropping:
            continue
        view = {"status": "success", "round": "masked-input", "index": i, "cohort": n,
                "sent": False, "timeout": 30.0,
                "boxes": {str(v): b64(box) for v, box in boxes[i].items()}}
        download[i] += answer_json(view)
        download_all[i] += answer_json(view)
        masked = send(i, "masked-input", view, updates[i])
        legacy[i] += len(masked)
        on_node(aggregator.receive_masked_input, i, masked)
    survivors, dropped = on_node(aggregator.close_masked_inputs)
    for i in survivors:
        view = {"status": "success", "round": "unmask", "index": i, "cohort": n, "sent": False,
                "timeout": 30.0, "survivors": survivors, "dropped": dropped}
        download[i] += answer_json(view)
        download_all[i] += answer_json(view)
        shares = wire.decode_entries(send(i, "unmask", view))
        legacy[i] += legacy_json({"shares": shares})
        on_node(aggregator.receive_unmask, i, shares)
    total, count = on_node(aggregator.finish)
    plain = sum(updates[i].astype(np.float64) for i in survivors)
    assert count == len(survivors) and np.abs(total - plain).max() < count * 2 * 8 / 2**22
    return {"node_seconds": node, "upload_bytes": max(upload[i] for i in survivors),
            "legacy_bytes": max(legacy[i] for i in survivors),
            "download_bytes": max(download[i] for i in survivors),
            "download_all_bytes": max(download_all[i] for i in survivors),
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
    parser.add_argument("--length", type=int, nargs="+", default=[100_000],
                        help="coordinates per update")
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    params = SecAggParams()
    print("SecAgg+ defaults (c=8, q=2^22, m=2^32), 10% drop after sharing keys; bytes per "
          "surviving device (the largest)")
    print(f"{'coords':>8} {'devices':>7} {'k':>3} {'t':>3} {'plain B':>9} {'secure B':>9} "
          f"{'upload x':>8} {'legacy B':>9} {'legacy x':>8} {'down B':>7} {'down all B':>10} "
          f"{'plain CPU s':>11} {'secure CPU s':>12}")
    for length in args.length:
        for n in args.devices:
            plain, secure = plain_cycle(n, length), secure_cycle(n, length, params)
            base = plain["upload_bytes"]
            print(f"{length:>8} {n:>7} {secure['degree']:>3} {secure['threshold']:>3} "
                  f"{base:>9} {secure['upload_bytes']:>9} "
                  f"{secure['upload_bytes'] / base:>8.3f} {secure['legacy_bytes']:>9} "
                  f"{secure['legacy_bytes'] / base:>8.3f} {secure['download_bytes']:>7} "
                  f"{secure['download_all_bytes']:>10} "
                  f"{plain['node_seconds']:>11.3f} {secure['node_seconds']:>12.3f}")


if __name__ == "__main__":
    main()
