"""Clients that vanish (TCP reset) in the middle of a large download, over HTTP, from the
dashboard and over WebSocket: the Node logs no traceback and keeps serving everyone else."""

from __future__ import annotations

import json
import socket
from functools import cache

import numpy as np
import requests
import websocket

from fedgrid_plans import tensors
from tests.support import raw_http
from tests.support.api_client import HttpApi
from tests.support.models import unique_name


@cache
def wide_model() -> tuple[bytes, bytes]:
    """A 1024 -> 2048 linear model: an 8 MiB checkpoint, more than loopback buffers hold."""
    import torch

    from fedgrid_plans.compiler import compile_plan

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 2048), loss="cross_entropy",
                            example_batch=(np.zeros((2, 1024), np.float32), np.zeros(2, np.int64)))
    return compiled.to_bytes(), tensors.encode(compiled.checkpoint())


def start_download(port: int, request: bytes, read: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    got = 0
    while got < read:
        chunk = sock.recv(65536)
        assert chunk, "the Node ended the answer early"
        got += len(chunk)
    return sock


def test_clients_vanishing_mid_download_log_no_traceback(shared_node):
    plan, checkpoint = wide_model()
    name = unique_name("wide")
    api = HttpApi(shared_node.url, shared_node.admin_token)
    hosted = api.call("host-training", {"name": name, "version": "1.0",
                                        "client_config": {"batch_size": 2},
                                        "server_config": {"max_diffs": 1}},
                      admin=True, blobs={"model": checkpoint, "plans/training_plan": plan})
    assert hosted.status == 200, hosted.body
    process_id = next(p["id"] for p in api.call("processes", admin=True).body["processes"]
                      if p["model"] == name)
    before = len(shared_node.log())
    login = requests.post(f"{shared_node.url}/dashboard/login",
                          data={"token": shared_node.admin_token}, allow_redirects=False, timeout=10)
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.get_dict().items())
    downloads = [
        f"GET /model-centric/retrieve-model?name={name}&version=1.0&checkpoint=latest HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {shared_node.admin_token}\r\n\r\n",
        f"GET /dashboard/checkpoint?process={process_id}&number=1 HTTP/1.1\r\n"
        f"Host: x\r\nCookie: {cookie}\r\n\r\n",
    ]
    for download in downloads:
        for read in (1, 1 << 20):  # just the status line, then a megabyte into the body
            raw_http.vanish(start_download(shared_node.port, download.encode(), read))
    # Over WebSocket: the same checkpoint asked for, then the client is gone.
    for _ in range(3):
        ws = websocket.create_connection(shared_node.ws_url, timeout=10)
        ws.send(json.dumps({"type": "model-centric/retrieve-model", "request_id": 1,
                            "authorization": f"Bearer {shared_node.admin_token}",
                            "data": {"name": name, "version": "1.0", "checkpoint": "latest"}}))
        ws.sock.recv(1)  # the answer has begun
        raw_http.vanish(ws.sock)
    # Everyone else is still served, the whole checkpoint included.
    whole = api.call("retrieve-model", {"name": name, "version": "1.0", "checkpoint": "latest"},
                     admin=True)
    assert whole.status == 200
    assert "Traceback" not in shared_node.log()[before:]
