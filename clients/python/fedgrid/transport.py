"""Getting events to a Node and answers back: HTTP (``requests``) or WebSocket (``websocket-client``).

Both transports expose the same two calls, so nothing above this module knows which one it uses:

- ``call(event, fields, blobs=None, admin_token=None) -> dict``: a JSON answer, or an exception
  from :mod:`fedgrid.errors` when the Node answered an error;
- ``download(event, params, admin_token=None) -> Download``: checkpoint or plan bytes. These always
  go over HTTP, also for a WebSocket client: a plain GET streams, is cached by proxies and does not
  hold the socket that other events share.

The scheme of the URL picks the transport (``http(s)://`` or ``ws(s)://``).
"""

from __future__ import annotations

import itertools
import json
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests
import websocket
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fedgrid_protocol.events import PLACE_AVAILABLE as PLACE_AVAILABLE_EVENT
from fedgrid_protocol.frames import encode_binary_frame

from .errors import FedgridError, NetworkUnreachable, ProcessUnknown, error_from_answer

# How each event travels over HTTP: (method, how its fields are sent).
HTTP_EVENTS: dict[str, tuple[str, str]] = {
    "host-training": ("POST", "multipart"),
    "authenticate": ("POST", "json"),
    "cycle-request": ("POST", "json"),
    "report": ("POST", "octet-stream"),
    "get-model": ("GET", "query"),
    "get-plan": ("GET", "query"),
    "retrieve-model": ("GET", "query"),
    "checkpoints": ("GET", "query"),
    "processes": ("GET", "query"),
    "cycles": ("GET", "query"),
    "pause-process": ("POST", "json"),
    "resume-process": ("POST", "json"),
    "stop-process": ("POST", "json"),
    "delete-process": ("POST", "json"),
    "evaluation-set": ("POST", "octet-stream"),
    "secagg-round": ("POST", "json"),
    "secagg-advertise-keys": ("POST", "octet-stream"),
    "secagg-share-keys": ("POST", "octet-stream"),
    "secagg-masked-input": ("POST", "octet-stream"),
    "secagg-unmask": ("POST", "octet-stream"),
}
# Transient Node answers worth retrying: 503 carries `cycle_unavailable` (the next cycle is being
# opened) with a Retry-After; 502/504 come from load balancers in front of Nodes.
RETRY_STATUSES = (429, 502, 503, 504)
DEFAULT_TIMEOUT = 60.0


@dataclass
class Download:
    """Bytes a Node sent (a checkpoint or a plan) and the headers that came with them."""

    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


def http_base(url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port``; an http URL loses its trailing slash."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if parts.scheme in ("ws", "wss") and path.endswith("/ws"):
        path = path[: -len("/ws")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def ws_endpoint(url: str) -> str:
    """The Node's WebSocket endpoint for an http(s) or ws(s) URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def make_session(retries: int, backoff: float) -> requests.Session:
    """A session that retries connection failures and transient statuses with exponential
    backoff and honours ``Retry-After``. Read failures are not retried: a report whose answer was
    lost may have been stored, and resending it would only earn ``report_duplicate``."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        other=0,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # POSTs too: the Node only sends these statuses before acting
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class HttpTransport:
    """Events as HTTP requests on one keep-alive ``requests`` session."""

    kind = "http"
    pushes = False  # HTTP has no unasked answers: a rejected device sleeps its timeout

    def wait_for_place(self, model: str, version: str | None, seconds: float,
                       stopped: threading.Event) -> None:
        """Sleep ``seconds`` (or until ``stopped`` is set)."""
        stopped.wait(seconds)

    def __init__(self, url: str, *, retries: int = 5, backoff: float = 0.5,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = http_base(url)
        self.timeout = timeout
        self.session = make_session(retries, backoff)

    def _request(self, method: str, path: str, event: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise NetworkUnreachable(
                f"{event}: cannot reach {self.url} ({type(exc).__name__}); check the URL and that "
                "the Node is running, then try again",
                code="network_unreachable",
            ) from exc

    def get_json(self, path: str, params: dict[str, Any] | None = None, *,
                 event: str | None = None) -> dict[str, Any]:
        """GET a JSON document that is not a model-centric event (``/status``, ``/route``)."""
        response = self._request("GET", path, event or path, params=params)
        return _json_answer(response, event or path)

    def call(self, event: str, fields: dict[str, Any] | None = None, *,
             blobs: dict[str, bytes] | None = None, admin_token: str | None = None) -> dict[str, Any]:
        method, style = HTTP_EVENTS[event]
        fields = {k: v for k, v in (fields or {}).items() if v is not None}
        blobs = blobs or {}
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        path = f"/model-centric/{event}"
        if style == "json":
            response = self._request(method, path, event, json=fields, headers=headers)
        elif style == "query":
            response = self._request(method, path, event, params=fields, headers=headers)
        elif style == "octet-stream":
            params = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in fields.items()}
            headers["Content-Type"] = "application/octet-stream"
            # The event's one binary field (a diff, an evaluation set) is the body; none for an
            # evaluation's report.
            response = self._request(method, path, event, params=params, headers=headers,
                                     data=next(iter(blobs.values()), b""))  # the one body
        else:  # multipart: JSON documents as text fields, bytes as files
            form = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items()}
            files = [
                (f"plans[{name[len('plans/'):]}]" if name.startswith("plans/") else name,
                 (name.rsplit("/", 1)[-1], blob, "application/octet-stream"))
                for name, blob in blobs.items()
            ]
            response = self._request(method, path, event, data=form, files=files, headers=headers)
        return _json_answer(response, event)

    def download(self, event: str, params: dict[str, Any], *,
                 admin_token: str | None = None) -> Download:
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        params = {k: v for k, v in params.items() if v is not None}
        response = self._request("GET", f"/model-centric/{event}", event, params=params,
                                 headers=headers)
        if response.status_code != 200 or _is_json(response):
            _json_answer(response, event)  # raises the Node's error
            raise FedgridError(f"{event}: the Node sent JSON where bytes were expected",
                               code="unexpected_answer", status=response.status_code)
        return Download(response.content, dict(response.headers))

    def speed_test(self, size: int = 1 << 20) -> dict[str, float]:
        """Measure ``ping`` (ms), ``download`` and ``upload`` (Mbit/s) against the Node."""
        started = time.perf_counter()
        self._request("GET", "/health", "speed-test")
        ping_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        response = self._request("GET", "/model-centric/speed-test", "speed-test",
                                 params={"size": size})
        received = len(response.content)
        download_s = max(time.perf_counter() - started, 1e-6)
        payload = np.random.default_rng().bytes(size)
        started = time.perf_counter()
        self._request("POST", "/model-centric/speed-test", "speed-test", data=payload,
                      headers={"Content-Type": "application/octet-stream"})
        upload_s = max(time.perf_counter() - started, 1e-6)
        return {
            "ping": round(ping_ms, 3),
            "download": round(received * 8 / download_s / 1e6, 3),
            "upload": round(size * 8 / upload_s / 1e6, 3),
        }

    def close(self) -> None:
        self.session.close()


class WebSocketTransport:
    """Events as envelopes on WebSockets; downloads and speed tests over HTTP.

    Each thread that calls has its own socket, with one request on it at a time (its answer
    matched by ``request_id``): a device does one thing at a time, and threads sharing a client
    neither wait for each other (a long-polling cycle-request, which the Node may hold for its
    ``wait``, does not hold up another job's report) nor see each other's answers. A dropped
    socket is reopened with exponential backoff before a call gives up with ``NetworkUnreachable``.
    """

    kind = "ws"
    # A cycle-request sent with ``notify`` makes the Node push ``place-available`` to this
    # thread's socket at the next opening, so a rejected device need not sleep out its timeout.
    pushes = True

    def __init__(self, url: str, *, retries: int = 5, backoff: float = 0.5,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.ws_url = ws_endpoint(url)
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.http = HttpTransport(url, retries=retries, backoff=backoff, timeout=timeout)
        self.url = self.http.url
        self._sockets: dict[int, websocket.WebSocket] = {}  # thread ident -> its socket
        self._lock = threading.Lock()  # guards _sockets and _ids; never held over the network
        self._ids = itertools.count(1)

    @property
    def _socket(self) -> websocket.WebSocket | None:
        """The calling thread's socket, if it has one."""
        with self._lock:
            return self._sockets.get(threading.get_ident())

    def _connect(self) -> websocket.WebSocket:
        sock = self._socket
        if sock is not None and _closed_by_peer(sock):
            self._drop()
            sock = None
        if sock is None:
            self._close_sockets_of_finished_threads()
            sock = websocket.create_connection(self.ws_url, timeout=self.timeout)
            with self._lock:
                self._sockets[threading.get_ident()] = sock
        return sock

    def _drop(self) -> None:
        with self._lock:
            sock = self._sockets.pop(threading.get_ident(), None)
        _close_quietly(sock)

    def _close_sockets_of_finished_threads(self) -> None:
        alive = {thread.ident for thread in threading.enumerate()}
        with self._lock:
            finished = [ident for ident in self._sockets if ident not in alive]
            orphans = [self._sockets.pop(ident) for ident in finished]
        for sock in orphans:
            _close_quietly(sock)

    def _exchange(self, event: str, message: str | bytes) -> str | bytes:
        for attempt in range(self.retries + 1):
            sent = False
            try:
                sock = self._connect()
                if isinstance(message, bytes):
                    sock.send_binary(message)
                else:
                    sock.send(message)
                sent = True
                while True:
                    reply = sock.recv()
                    if _push_model(reply) is None:  # an unasked push is never an answer
                        return reply
            except (OSError, websocket.WebSocketException) as exc:
                self._drop()
                # Once a message went out its answer may be lost after the Node acted on it:
                # resending a report would only be refused as a duplicate, so say so instead.
                if sent or attempt == self.retries:
                    raise NetworkUnreachable(
                        f"{event}: the WebSocket to {self.ws_url} failed ({type(exc).__name__}); "
                        "check the URL and that the Node is running, then try again",
                        code="network_unreachable",
                    ) from exc
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def call(self, event: str, fields: dict[str, Any] | None = None, *,
             blobs: dict[str, bytes] | None = None, admin_token: str | None = None) -> dict[str, Any]:
        fields = {k: v for k, v in (fields or {}).items() if v is not None}
        for attempt in range(self.retries + 1):
            with self._lock:
                request_id = next(self._ids)
            envelope: dict[str, Any] = {"type": f"model-centric/{event}",
                                        "request_id": request_id, "data": fields}
            if admin_token:
                envelope["authorization"] = f"Bearer {admin_token}"
            message = encode_binary_frame(envelope, blobs) if blobs else json.dumps(envelope)
            reply = self._exchange(event, message)
            if isinstance(reply, bytes):
                raise FedgridError(f"{event}: the Node answered a binary frame to a JSON event",
                                   code="unexpected_answer")
            answer = json.loads(reply)
            if answer.get("request_id") != request_id:
                self._drop()
                raise FedgridError(f"{event}: answer for another request on the WebSocket",
                                   code="unexpected_answer")
            body = answer.get("data")
            if isinstance(body, dict) and "error" in body:
                error = error_from_answer(body, None, event)
                # The same transient answers the HTTP session retries (cycle_unavailable...).
                if error.status in RETRY_STATUSES and attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise error
            return body
        raise AssertionError("unreachable")

    def wait_for_place(self, model: str, version: str | None, seconds: float,
                       stopped: threading.Event) -> None:
        """Sleep up to ``seconds``, ending early when the Node pushes ``place-available`` for
        ``model`` on this thread's socket, or when ``stopped`` is set (checked twice a second)."""
        sock = self._socket
        if sock is None:
            stopped.wait(seconds)
            return
        give_up = time.monotonic() + seconds
        try:
            while not stopped.is_set():
                left = give_up - time.monotonic()
                if left <= 0:
                    return
                sock.settimeout(min(left, PUSH_POLL_SECONDS))
                try:
                    frame = sock.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                pushed = _push_model(frame)
                if pushed is not None and pushed[0] == model and version in (None, pushed[1]):
                    return
        except (OSError, websocket.WebSocketException):
            self._drop()  # the next call reconnects; sleep out the rest meanwhile
            stopped.wait(max(0.0, give_up - time.monotonic()))
        else:
            sock.settimeout(self.timeout)

    def download(self, event: str, params: dict[str, Any], *,
                 admin_token: str | None = None) -> Download:
        return self.http.download(event, params, admin_token=admin_token)

    def get_json(self, path: str, params: dict[str, Any] | None = None, *,
                 event: str | None = None) -> dict[str, Any]:
        return self.http.get_json(path, params, event=event)

    def speed_test(self, size: int = 1 << 20) -> dict[str, float]:
        return self.http.speed_test(size)

    def close(self) -> None:
        with self._lock:
            sockets = list(self._sockets.values())
            self._sockets.clear()
        for sock in sockets:
            _close_quietly(sock)
        self.http.close()


Transport = HttpTransport | WebSocketTransport
PLACE_AVAILABLE = f"model-centric/{PLACE_AVAILABLE_EVENT}"  # the protocol's push, as framed
PUSH_POLL_SECONDS = 0.5  # how often a device waiting for a push checks whether it was stopped


def _push_model(frame: str | bytes) -> tuple[str, str] | None:
    """``(model, version)`` of a ``place-available`` push, or None for any other frame."""
    if isinstance(frame, bytes) or PLACE_AVAILABLE not in frame:
        return None
    try:
        envelope = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("type") != PLACE_AVAILABLE:
        return None
    data = envelope.get("data") or {}
    return str(data.get("model")), str(data.get("version"))


def open_transport(url: str, **options: Any) -> Transport:
    """The transport for the URL's scheme: ``ws``/``wss`` -> WebSocket, ``http``/``https`` -> HTTP."""
    scheme = urlsplit(url).scheme
    if scheme in ("ws", "wss"):
        return WebSocketTransport(url, **options)
    if scheme in ("http", "https"):
        return HttpTransport(url, **options)
    raise ValueError(f"unsupported URL {url!r}: use http(s):// or ws(s)://")


def server_kind(url: str, **options: Any) -> str:
    """What answers at ``url``: ``"node"`` or ``"network"`` (from ``GET /status``)."""
    probe = HttpTransport(url, **options)
    try:
        try:
            status = probe.get_json("/status", event="status")
        except FedgridError as exc:
            if isinstance(exc, NetworkUnreachable):
                raise
            return "node"  # a Node older than /status: it can only be a Node
        return "network" if status.get("kind") == "network" else "node"
    finally:
        probe.close()


def route_to_node(network_url: str, model: str, version: str | None, **options: Any) -> str:
    """The URL of the Node a Fedgrid Network routes ``model`` to (``GET /route``), in the scheme
    of ``network_url`` (a WebSocket client keeps talking WebSocket to the Node)."""
    probe = HttpTransport(network_url, **options)
    try:
        route = probe.get_json("/route", {"model": model, "version": version}, event="route")
    except FedgridError as exc:
        if exc.status == 404:
            shown = model if version is None else f"{model} version {version}"
            raise ProcessUnknown(f"no Node on the Network {probe.url} hosts {shown}",
                                 code="process_unknown", status=404) from None
        raise
    finally:
        probe.close()
    address = route.get("address")
    if not isinstance(address, str) or not address:
        raise FedgridError(f"the Network at {network_url} answered a route without an address",
                           code="unexpected_answer")
    return ws_endpoint(address) if urlsplit(network_url).scheme in ("ws", "wss") else http_base(address)


def _close_quietly(sock: websocket.WebSocket | None) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except (OSError, websocket.WebSocketException):
        pass  # it is already broken; we only want it gone


def _closed_by_peer(sock: websocket.WebSocket) -> bool:
    """Whether an idle socket has something to read. The Node only speaks when asked, so that
    is its close frame or EOF (it restarted, or an idle timeout closed it): sending on it would
    seem to work and only the answer would be lost, which cannot be retried safely."""
    raw = sock.sock
    if raw is None:
        return True
    try:
        readable, _, _ = select.select([raw], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _is_json(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").startswith("application/json")


def _json_answer(response: requests.Response, event: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict):
        raise error_from_answer(body, response.status_code, event)
    return body
