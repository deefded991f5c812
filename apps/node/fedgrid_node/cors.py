"""Cross-origin access for browser devices whose page is served from another origin.

Only the API a device or researcher script uses is opened (`/model-centric/*`, `/js/*`, health,
status, OpenAPI); the dashboard keeps to its own origin, since it authenticates with a cookie.
Credentials are never allowed cross-origin: admin calls carry a bearer token, which a browser
never attaches by itself, so answering `*` exposes nothing a page could not already ask.
"""

from __future__ import annotations

from flask import Flask, request

API_PREFIXES = ("/model-centric/", "/js/", "/health", "/status", "/openapi.json")
# Headers a device's script must be able to read (pace steering, checkpoint number, plan hash).
EXPOSED_HEADERS = "Retry-After, X-Fedgrid-Checkpoint, X-Fedgrid-Plan-Hash, Content-Disposition"
PREFLIGHT_MAX_AGE = "600"


def parse_origins(value: str | None) -> tuple[str, ...]:
    """``*`` (any origin, the default), ``none``, or a comma-separated list of origins."""
    if value is None or value.strip() == "*":
        return ("*",)
    if value.strip().lower() == "none":
        return ()
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


def resource_policy(origins: tuple[str, ...]) -> str:
    """``Cross-Origin-Resource-Policy`` of the SDK's files (``/js/``), in line with the CORS setting.

    A cross-origin isolated page (COEP ``require-corp``) loads a ``<script>`` of another origin only
    when its response says ``cross-origin``; fetches and module imports (ONNX Runtime's WASM and
    .mjs) are CORS requests and are gated by the origins above instead. With CORS off (``none``)
    the files are kept to the Node's own pages; CORP cannot name origins, so a list of origins gets
    ``cross-origin`` (a plain ``<script>`` tag was never gated by CORS anyway).
    """
    return "cross-origin" if origins else "same-origin"


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    @app.after_request
    def add_cors_headers(response):
        origin = request.headers.get("Origin")
        if not origin or not origins or not request.path.startswith(API_PREFIXES):
            return response
        if "*" in origins:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.vary.add("Origin")
        else:
            return response
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
