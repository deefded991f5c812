"""Every code of the protocol's error table raises the class the table names, the same class the
JavaScript SDK raises for it (clients/js/test/errors.test.js)."""

from __future__ import annotations

import pytest

import fedgrid
from fedgrid import errors
from fedgrid.errors import FedgridError, error_from_answer
from fedgrid_protocol.errors import ERROR_CODES, SDK_CODES, SDK_EXCEPTIONS


def answer(code: str, status: int | None) -> dict:
    return {"error": {"code": code, "message": f"refused: {code}", "status": status,
                      "details": {"field": "x"}}}


@pytest.mark.parametrize("name", SDK_EXCEPTIONS)
def test_one_exported_class_per_sdk_exception(name):
    cls = getattr(fedgrid, name)
    assert cls is getattr(errors, name) is errors.EXCEPTIONS[name]
    assert cls.__name__ == name
    assert issubclass(cls, FedgridError) and cls is not FedgridError
    assert cls.__doc__ and len(cls.__doc__) > 40, f"{name} needs a docstring saying what to do"
    assert name in fedgrid.__all__


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
@pytest.mark.parametrize("event", ["report", "cycle-request"])
def test_every_server_code_raises_the_class_the_table_names(code, event):
    entry = ERROR_CODES[code]
    error = error_from_answer(answer(code, entry.status), entry.status, event)
    assert type(error).__name__ == entry.sdk_exception, (code, type(error).__name__)
    assert type(error) is errors.EXCEPTIONS[entry.sdk_exception]
    assert (error.code, error.status, error.details) == (code, entry.status, {"field": "x"})
    assert error.message == f"refused: {code}"


@pytest.mark.parametrize("code", sorted(SDK_CODES))
def test_every_sdk_code_raises_the_class_the_table_names(code):
    error = error_from_answer(answer(code, None), None, "report")
    assert type(error).__name__ == SDK_CODES[code]
    assert error.code == code


def test_network_unreachable_defaults_its_code():
    assert fedgrid.NetworkUnreachable("down").code == "network_unreachable"


@pytest.mark.parametrize(("status", "name"), [
    (500, "Unavailable"), (503, "Unavailable"), (599, "Unavailable"),
    (400, "RequestInvalid"), (404, "RequestInvalid"), (409, "RequestInvalid"), (499, "RequestInvalid"),
])
def test_an_unknown_code_goes_by_its_status(status, name):
    error = error_from_answer(answer("from_a_newer_server", status), status, "cycle-request")
    assert type(error).__name__ == name
    assert error.code == "from_a_newer_server"


def test_the_bodys_status_decides_and_the_http_status_stands_in():
    body = {"error": {"code": "from_a_newer_server", "message": "m"}}
    assert type(error_from_answer(body, 502, "report")) is fedgrid.Unavailable
    assert type(error_from_answer(answer("from_a_newer_server", 400), 502, "x")) is fedgrid.RequestInvalid


@pytest.mark.parametrize("body", [None, {}, "<html>", {"error": "text"}, {"error": {"message": "no code"}}])
def test_an_answer_that_is_not_an_error_answer_is_unexpected(body):
    error = error_from_answer(body, 502, "cycle-request")
    assert type(error) is FedgridError
    assert (error.code, error.status) == ("unexpected_answer", 502)


def test_report_duplicate_is_report_refused_for_any_event():
    for event in ("report", "get-model"):
        error = error_from_answer(answer("report_duplicate", 409), 409, event)
        assert type(error) is fedgrid.ReportRefused


def test_rejections_are_not_table_errors():
    assert issubclass(fedgrid.TrainingFinished, fedgrid.Rejected)
    assert "Rejected" not in SDK_EXCEPTIONS and "Rejected" not in errors.EXCEPTIONS
