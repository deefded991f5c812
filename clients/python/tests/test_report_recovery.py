"""A report whose answer is lost on the way back is neither lost nor counted twice.

A real loopback proxy sits between the SDK and a real Node; it lets the first report reach the
Node and then cuts the connection before the Node's "success" gets back. The SDK sends the report
once more, hears `report_duplicate` (only it holds the request key, so the first one was stored)
and reports success; the Node holds exactly one report.
"""

from __future__ import annotations

import socket
import threading

from fedgrid import Admin, Client


class AnswerDroppingProxy:
    """Forwards TCP to the Node; drops the answer to the first POST /model-centric/report."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pending = {"report": False}
            threading.Thread(target=self._to_node, args=(client, upstream, pending), daemon=True).start()
            threading.Thread(target=self._to_device, args=(upstream, client, pending), daemon=True).start()

    def _to_node(self, client, upstream, pending) -> None:
        try:
            while data := client.recv(65536):
                if b"POST /model-centric/report" in data:
                    pending["report"] = True
                upstream.sendall(data)
        except OSError:
            pass

    def _to_device(self, upstream, client, pending) -> None:
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    drop = pending["report"] and self.dropped == 0
                    if drop:
                        self.dropped += 1
                if drop:  # the Node has answered, so it acted: lose its answer
                    for sock in (client, upstream):
                        sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump, tells the peer
                        sock.close()
                    return
                pending["report"] = False
                client.sendall(data)
        except OSError:
            pass


def test_a_report_whose_answer_was_lost_is_neither_lost_nor_doubled(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 3})
    features, labels = digits
    proxy = AnswerDroppingProxy(sdk_node.port)
    try:
        with Client(proxy.url) as client:
            assignment = client.new_job(name).request()
            answer = assignment.report(assignment.train((features[:40], labels[:40])))
    finally:
        proxy.close()
    assert proxy.dropped == 1
    assert answer["status"] == "success" and assignment.reported
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        cycle = admin.cycles(name)[0]
    assert cycle["reported"] == 1 and cycle["num_samples"] == 40
