"""Write the protocol artefacts the JavaScript SDK and the SDK docs need, generated from this package.

    python -m fedgrid_protocol.export           # (re)write every generated file (`make protocol`)
    python -m fedgrid_protocol.export --check   # exit 1, naming them, when one is stale
    python -m fedgrid_protocol.export --json    # print the artefacts as JSON

The generated files are committed: the JavaScript SDK builds and runs from them with no Python
step. A test on each side (protocol/tests/test_export.py, clients/js/test/protocol.test.js) fails
when one no longer matches this package.

- ``clients/js/src/protocol.generated.js``: the error table as deeply frozen objects
  (``ERROR_CODES``: code → {status, exception, meaning, servers}; ``SDK_CODES``; ``SDK_EXCEPTIONS``);
- ``clients/js/types/protocol.generated.d.ts``: its type declarations (``ErrorCode``, ...), and the
  wire types: a TypeScript interface for every event's request and answer (``CycleRequest``,
  ``AcceptedAnswer``, ...; ``ErrorAnswer``) and the maps ``EventRequests`` / ``EventAnswers``, converted
  from the models' JSON Schema by ``typescript.py`` (which fails on a schema it cannot translate);
- the error tables of ``docs/sdk-python.md`` and ``docs/sdk-js.md``, between the markers
  ``<!-- generated: error table -->`` and ``<!-- end generated: error table -->``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import errors, typescript
from .events import MAX_WAIT_SECONDS

REGENERATE = "python -m fedgrid_protocol.export (or `make protocol`)"
HEADER = (
    "Generated from protocol/fedgrid_protocol by `python -m fedgrid_protocol.export` "
    "(`make protocol`); do not edit."
)

# What the caller does about an SDK-made code (server codes take theirs from errors.py's docstring).
SDK_CODE_ADVICE = {
    "network_unreachable": "nothing answered (connection refused or reset, DNS, timeout) even after "
                           "the retries: check the URL and that the server runs; try again later",
    "unexpected_answer": "an answer that is not the protocol's (e.g. a proxy's page): check that "
                         "the URL is a Fedgrid server's",
}

DOC_BEGIN = "<!-- generated: error table -->"
DOC_END = "<!-- end generated: error table -->"
DOCS = ("docs/sdk-python.md", "docs/sdk-js.md")
CODES_BEGIN = "<!-- generated: error codes -->"
CODES_END = "<!-- end generated: error codes -->"
# Each server's API doc carries the codes that server answers.
CODE_DOCS = {"docs/api.md": "node", "docs/operations.md": "network"}


def advice() -> dict[str, str]:
    """What the caller should do about each SDK exception: the bullets of errors.py's docstring."""
    found = {}
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^- ``(\w+)``: (.+?)[;.]?$", line.strip())
        if match:
            found[match.group(1)] = match.group(2).replace("``", "`")  # reST to Markdown
    missing = [name for name in errors.SDK_EXCEPTIONS if name not in found]
    if missing:
        raise ValueError(f"fedgrid_protocol/errors.py's docstring has no '- ``Name``: what to do' "
                         f"bullet for {missing}")
    return found


def error_table() -> dict[str, Any]:
    """The error table as JSON: every server code, the SDK-made codes, and the SDK exceptions."""
    what_to_do = advice()
    return {
        "sdk_exceptions": {name: {"advice": what_to_do[name]} for name in errors.SDK_EXCEPTIONS},
        "codes": {
            entry.code: {
                "status": entry.status,
                "exception": entry.sdk_exception,
                "meaning": entry.meaning,
                "servers": list(entry.servers),
            }
            for entry in errors.ERROR_CODES.values()
        },
        "sdk_codes": {
            code: {"exception": exception, "advice": SDK_CODE_ADVICE[code]}
            for code, exception in errors.SDK_CODES.items()
        },
    }


def artefacts() -> dict[str, Any]:
    """Everything exported, by artefact: the error table, and the events' JSON Schemas."""
    return {"errors": error_table(), "wire": typescript.wire_schemas()}


# ------------------------------------------------------------------------------ renderers

def _js_literal(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def render_js(data: dict[str, Any]) -> str:
    table = data["errors"]
    codes = {code: {"status": e["status"], "exception": e["exception"], "meaning": e["meaning"],
                    "servers": e["servers"]} for code, e in table["codes"].items()}
    sdk_codes = {code: e["exception"] for code, e in table["sdk_codes"].items()}
    return "\n".join([
        f"// {HEADER}",
        "// The JavaScript SDK builds and runs from this committed file; test/protocol.test.js fails when",
        "// it no longer matches the protocol package.",
        "",
        "const freeze = (value) => {",
        "  if (value && typeof value === 'object') Object.values(value).forEach(freeze);",
        "  return Object.freeze(value);",
        "};",
        "",
        "/** The exception classes both SDKs raise for server codes, named by what the caller should do. */",
        f"export const SDK_EXCEPTIONS = freeze({_js_literal(list(table['sdk_exceptions']))});",
        "",
        "/** What the caller should do about each SDK exception. */",
        "export const SDK_EXCEPTION_ADVICE = freeze("
        f"{_js_literal({k: v['advice'] for k, v in table['sdk_exceptions'].items()})});",
        "",
        "/** Every error code a Fedgrid server answers: its HTTP status, the SDK exception, what it means",
        " *  and which servers answer it ('node', 'network'). */",
        f"export const ERROR_CODES = freeze({_js_literal(codes)});",
        "",
        "/** Codes the SDKs make up themselves, for failures that never reached a server's answer. */",
        f"export const SDK_CODES = freeze({_js_literal(sdk_codes)});",
        "",
        "/** The longest a cycle-request may be held (its `wait`, seconds). */",
        f"export const MAX_WAIT_SECONDS = {MAX_WAIT_SECONDS:g};",
        "",
    ])


def _union(names: list[str]) -> str:
    return "\n".join(f"  | '{name}'" for name in names)


def render_types(data: dict[str, Any]) -> str:
    table = data["errors"]
    codes = table["codes"]
    rows = [f"  readonly {code}: ErrorCodeEntry<{entry['status']}, '{entry['exception']}'>;"
            for code, entry in codes.items()]
    sdk_rows = [f"  readonly {code}: '{entry['exception']}';" for code, entry in table["sdk_codes"].items()]
    return "\n".join([
        f"// {HEADER}",
        "",
        "/** The exception classes both SDKs raise for server codes. */",
        "export type SdkExceptionName =",
        _union(list(table["sdk_exceptions"])) + ";",
        "",
        "/** Every error code a Fedgrid server answers. */",
        "export type ErrorCode =",
        _union(list(codes)) + ";",
        "",
        "/** Codes the SDKs make up themselves (never answered by a server). */",
        "export type SdkCode =",
        _union(list(table["sdk_codes"])) + ";",
        "",
        "export interface ErrorCodeEntry<S extends number = number, E extends SdkExceptionName = SdkExceptionName> {",
        "  readonly status: S;",
        "  readonly exception: E;",
        "  readonly meaning: string;",
        "  readonly servers: readonly ('node' | 'network')[];",
        "}",
        "",
        "export interface ErrorCodes {",
        *rows,
        "}",
        "",
        "export interface SdkCodes {",
        *sdk_rows,
        "}",
        "",
        "// ----------------------------------------------------------------------------- wire types",
        "// The events' requests and answers as they travel (snake_case), from their JSON Schema.",
        "// Bounds TypeScript cannot express are in the doc comments; servers enforce them.",
        "",
        *typescript.render(data["wire"]),
        "",
    ])


def _codes_cell(codes: dict[str, dict[str, Any]]) -> str:
    by_status: dict[int, list[str]] = {}
    for code, entry in codes.items():
        by_status.setdefault(entry["status"], []).append(f"`{code}`")
    return "; ".join(f"{status}: {', '.join(names)}" for status, names in sorted(by_status.items()))


def render_doc_table(data: dict[str, Any]) -> str:
    """The exception → codes → what-to-do table both SDK docs carry."""
    table = data["errors"]
    lines = [
        DOC_BEGIN,
        f"<!-- {HEADER} -->",
        "",
        "| exception | codes (by HTTP status) | what to do |",
        "|---|---|---|",
    ]
    for name, entry in table["sdk_exceptions"].items():
        codes = {c: e for c, e in table["codes"].items() if e["exception"] == name}
        lines.append(f"| `{name}` | {_codes_cell(codes)} | {entry['advice']} |")
    for code, entry in table["sdk_codes"].items():
        lines.append(f"| `{entry['exception']}` | `{code}` (made by the SDK) | {entry['advice']} |")
    lines += [
        "",
        "A code this table does not know (from a newer server) raises `Unavailable` when its status "
        "is 5xx, `RequestInvalid` otherwise.",
        "",
        DOC_END,
    ]
    return "\n".join(lines)


def render_code_table(server: str) -> str:
    """Every code one server answers, with its status, meaning and SDK exception (the API docs)."""
    lines = [
        CODES_BEGIN,
        f"<!-- {HEADER} -->",
        "",
        "| code | status | meaning | SDK exception |",
        "|---|---|---|---|",
    ]
    for code, entry in errors.ERROR_CODES.items():
        if server in entry.servers:
            meaning = entry.meaning.replace("|", "\\|")
            lines.append(f"| `{code}` | {entry.status} | {meaning} | `{entry.sdk_exception}` |")
    lines += ["", CODES_END]
    return "\n".join(lines)


def with_doc_table(text: str, block: str, path: str, begin: str = DOC_BEGIN,
                   end_marker: str = DOC_END) -> str:
    start, end = text.find(begin), text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {begin} ... {end_marker} block to fill")
    return text[:start] + block + text[end + len(end_marker):]


# ------------------------------------------------------------------------------ files

def repo_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    if (here / "clients" / "js" / "package.json").exists():
        return here
    return Path.cwd()


def outputs(root: Path) -> dict[Path, Callable[[str | None], str]]:
    """Each generated file and how to make its text (given the file's current text, or None)."""
    data = artefacts()
    files: dict[Path, Callable[[str | None], str]] = {
        root / "clients/js/src/protocol.generated.js": lambda _old: render_js(data),
        root / "clients/js/types/protocol.generated.d.ts": lambda _old: render_types(data),
    }
    block = render_doc_table(data)
    for doc in DOCS:
        files[root / doc] = (lambda old, doc=doc: with_doc_table(old or "", block, doc))
    for doc, server in CODE_DOCS.items():
        files[root / doc] = (lambda old, doc=doc, server=server: with_doc_table(
            old or "", render_code_table(server), doc, CODES_BEGIN, CODES_END))
    return files


def stale(root: Path) -> list[Path]:
    """The generated files that do not match the protocol package."""
    found = []
    for path, make in outputs(root).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        try:
            if current != make(current):
                found.append(path)
        except ValueError:
            found.append(path)
    return found


def write(root: Path) -> list[Path]:
    """(Re)write every generated file; returns those that changed."""
    changed = []
    for path, make in outputs(root).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        text = make(current)
        if text != current:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedgrid_protocol.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    mode.add_argument("--json", action="store_true", help="print the artefacts as JSON")
    parser.add_argument("--root", type=Path, default=None, help="the repository (default: found)")
    args = parser.parse_args(argv)
    root = args.root or repo_root()
    if args.json:
        print(json.dumps(artefacts(), indent=2, ensure_ascii=False))
        return 0
    if args.check:
        found = stale(root)
        for path in found:
            print(f"stale: {path.relative_to(root)}")
        if found:
            print(f"regenerate with: {REGENERATE}")
            return 1
        print("generated protocol files are up to date")
        return 0
    for path in write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
