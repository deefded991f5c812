"""The generated files (the JavaScript SDK's error table, its types and the wire types, the SDK
docs' error tables) match the protocol package, and the export carries the whole table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedgrid_protocol import export
from fedgrid_protocol.errors import ERROR_CODES, SDK_CODES, SDK_EXCEPTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_generated_files_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path in export.stale(ROOT)]
    assert stale == [], (f"stale generated files {stale}: regenerate with `make protocol` "
                         "(.venv/bin/python -m fedgrid_protocol.export) and commit them")


def test_the_export_carries_every_code_and_exception():
    table = export.error_table()
    assert list(table["sdk_exceptions"]) == list(SDK_EXCEPTIONS)
    assert all(entry["advice"] for entry in table["sdk_exceptions"].values())
    assert {code: (e["status"], e["exception"], e["meaning"], tuple(e["servers"]))
            for code, e in table["codes"].items()} == {
        code: (e.status, e.sdk_exception, e.meaning, e.servers) for code, e in ERROR_CODES.items()}
    assert {code: e["exception"] for code, e in table["sdk_codes"].items()} == SDK_CODES
    json.dumps(export.artefacts())  # JSON all the way


def test_the_js_module_holds_the_same_table():
    text = export.render_js(export.artefacts())
    for code, entry in ERROR_CODES.items():
        assert f'"{code}": {{\n    "status": {entry.status},\n    "exception": "{entry.sdk_exception}"' in text
    types = export.render_types(export.artefacts())
    assert all(f"  | '{code}'" in types for code in ERROR_CODES)


def test_every_code_is_in_the_docs_table_in_its_exceptions_row():
    block = export.render_doc_table(export.artefacts())
    rows = {line.split("|")[1].strip().strip("`"): line for line in block.splitlines()
            if line.startswith("| `")}
    for code, entry in ERROR_CODES.items():
        assert f"`{code}`" in rows[entry.sdk_exception], code
    for code, name in SDK_CODES.items():
        assert f"`{code}`" in rows[name]


def _tree(root: Path) -> None:
    for relative in ["clients/js/src", "clients/js/types", "docs"]:
        (root / relative).mkdir(parents=True)
    (root / "clients/js/package.json").write_text("{}")
    for doc in export.DOCS:
        (root / doc).write_text(f"# SDK\n\n{export.DOC_BEGIN}\nold\n{export.DOC_END}\n\nafter\n")
    for doc in export.CODE_DOCS:
        (root / doc).write_text(f"# API\n\n{export.CODES_BEGIN}\nold\n{export.CODES_END}\n")


def test_check_reports_a_stale_file_and_write_repairs_it(tmp_path, capsys):
    _tree(tmp_path)
    assert export.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "stale: clients/js/src/protocol.generated.js" in out and "make protocol" in out
    assert "stale: clients/js/types/protocol.generated.d.ts" in out
    assert export.main(["--root", str(tmp_path)]) == 0
    assert export.main(["--check", "--root", str(tmp_path)]) == 0
    doc = (tmp_path / "docs/sdk-js.md").read_text()
    assert doc.startswith("# SDK\n\n") and doc.endswith("\n\nafter\n") and "old" not in doc
    assert "`report_duplicate`" in doc
    types = (tmp_path / "clients/js/types/protocol.generated.d.ts").read_text()
    assert "export interface CycleRequest {" in types and "export interface EventAnswers {" in types


def test_a_hand_edited_wire_type_is_stale(tmp_path, capsys):
    _tree(tmp_path)
    assert export.main(["--root", str(tmp_path)]) == 0
    types = tmp_path / "clients/js/types/protocol.generated.d.ts"
    text = types.read_text()
    assert "  wait?: number | null;" in text
    types.write_text(text.replace("  wait?: number | null;", "  wait?: string;"))
    capsys.readouterr()
    assert export.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == "stale: clients/js/types/protocol.generated.d.ts"


def test_a_doc_without_the_markers_is_stale(tmp_path):
    with pytest.raises(ValueError, match="no <!-- generated"):
        export.with_doc_table("# nothing here\n", "block", "docs/x.md")


def test_each_servers_api_doc_lists_exactly_the_codes_it_answers():
    api = export.render_code_table("node")
    operations = export.render_code_table("network")
    assert "`assignment_expired` | 409" in api and "`node_id_taken`" not in api
    assert "`node_id_taken` | 409" in operations and "`assignment_expired`" not in operations
    assert "`internal_error`" in api and "`internal_error`" in operations
