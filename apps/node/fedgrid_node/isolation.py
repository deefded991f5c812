"""Cross-origin isolation of the pages the Node serves to browser devices.

ONNX Runtime's multi-threaded WASM shares its memory between workers through SharedArrayBuffer,
which browsers give only to a cross-origin isolated page: one served with
``Cross-Origin-Opener-Policy: same-origin`` (no window of another origin shares its process) and
``Cross-Origin-Embedder-Policy: require-corp`` (everything it loads from another origin consents,
by CORS or ``Cross-Origin-Resource-Policy``). With both, ``crossOriginIsolated`` is true and the
JavaScript SDK trains on several threads.

On by default. An operator who changes the example page to embed third-party content that sends
neither CORS nor CORP headers (an analytics script, a video, an iframe), or opens windows of
another origin that must talk back to it, turns it off with ``--cross-origin-isolation off``
(``FEDGRID_CROSS_ORIGIN_ISOLATION=off``): the pages then load anything and train on one thread.
"""

from __future__ import annotations

import argparse

ISOLATION_ENV = "FEDGRID_CROSS_ORIGIN_ISOLATION"

PAGE_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}
# A dedicated worker's embedder policy is its own script response's, and an isolated page may only
# start workers that require CORP too: ONNX Runtime starts its threads from
# /js/ort/ort-wasm-simd-threaded.mjs, and without COEP on it Chromium 156 closes the page as the
# threads start (checked by hand; clients/js/test/browser_threads.test.js trains on threads).
WORKER_SCRIPT_HEADERS = {"Cross-Origin-Embedder-Policy": "require-corp"}
PAGE_TYPES = ("text/html",)
SCRIPT_TYPES = ("text/javascript",)

_SWITCH = {"on": True, "true": True, "1": True, "yes": True,
           "off": False, "false": False, "0": False, "no": False}


def parse_switch(value: str) -> bool:
    """``on`` / ``off`` (also true/false, 1/0, yes/no), for --cross-origin-isolation."""
    try:
        return _SWITCH[value.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected on or off, not {value!r}") from None


def isolation_headers(media_type: str | None) -> dict[str, str]:
    """The headers an isolated Node adds to a response of this media type."""
    if media_type in PAGE_TYPES:
        return PAGE_HEADERS
    if media_type in SCRIPT_TYPES:
        return WORKER_SCRIPT_HEADERS
    return {}
