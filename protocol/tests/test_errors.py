"""The error table: complete for what the servers raise, consistent, and what ApiError enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedgrid_protocol.errors import ERROR_CODES, SDK_EXCEPTIONS, ApiError, sdk_exception_for

ROOT = Path(__file__).resolve().parents[2]
RAISED = re.compile(r'ApiError\(\s*"([a-z_]+)"')


def test_every_code_the_servers_raise_is_in_the_table():
    raised = set()
    for source in (ROOT / "apps").rglob("*.py"):
        if "tests" not in source.parts:
            raised |= set(RAISED.findall(source.read_text()))
    assert raised, "no ApiError found: the scan is broken"
    assert sorted(raised - set(ERROR_CODES)) == []


def test_every_entry_names_a_known_sdk_exception_and_an_error_status():
    for entry in ERROR_CODES.values():
        assert entry.sdk_exception in SDK_EXCEPTIONS, entry
        assert 400 <= entry.status <= 599, entry
        assert entry.meaning and set(entry.servers) <= {"node", "network"}, entry


def test_api_error_takes_the_tables_status_and_refuses_undocumented_codes():
    assert ApiError("report_duplicate", "x").status == 409
    assert ApiError("http_error", "x", 418).status == 418
    with pytest.raises(ValueError, match="undocumented"):
        ApiError("made_up", "x")


def test_unknown_codes_fall_back_by_status():
    assert sdk_exception_for("assignment_expired") == "AssignmentExpired"
    assert sdk_exception_for("network_unreachable") == "NetworkUnreachable"
    assert sdk_exception_for("from_a_newer_node", 503) == "Unavailable"
    assert sdk_exception_for("from_a_newer_node", 400) == "RequestInvalid"
    # http_error stands for any HTTP-level refusal: its real status decides.
    assert sdk_exception_for("http_error", 503) == "Unavailable"
    assert sdk_exception_for("http_error", 418) == "RequestInvalid"
