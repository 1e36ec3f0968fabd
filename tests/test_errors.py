"""The error model: every row of the unipile-v2.md error table, hostile bodies, Retry-After."""

from __future__ import annotations

import ast
import email.utils
import inspect
import traceback

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from bulkgroups import errors
from bulkgroups.errors import (
    AccountDisconnected,
    AccountError,
    AccountRestricted,
    ApiError,
    AuthError,
    BulkGroupsError,
    Conflict,
    NotFound,
    PaginationError,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    TransientError,
    TransportError,
    Unreachable,
    UnsupportedAccount,
    error_from_response,
    parse_retry_after,
)

NOW = 1_800_000_000.0


def problem(status: int, type_: str, **extra: object) -> bytes:
    body: dict[str, object] = {
        "object": "Error",
        "type": type_,
        "status": status,
        "title": "A title",
        "detail": "Some detail",
        "req_id": "req_abc",
    }
    body.update(extra)
    return orjson.dumps(body)


# Every row of the table in unipile-v2.md "Errors", type by type.
TABLE = [
    (400, "api/invalid_parameters", RequestRejected),
    (400, "provider/invalid_parameters", RequestRejected),
    (400, "api/invalid_auth_format", AuthError),
    (401, "api/missing_authorization", AuthError),
    (401, "api/expired_authorization", AuthError),
    (401, "provider/invalid_authorization", AccountDisconnected),
    (401, "provider/invalid_credentials", AccountDisconnected),
    (403, "api/account_restricted", AccountRestricted),
    (403, "api/inactive_subscription", AccountRestricted),
    (403, "api/insufficient_permissions", UnsupportedAccount),
    (403, "provider/insufficient_permissions", PermissionDenied),
    (404, "api/resource_not_found", NotFound),
    (404, "provider/resource_not_found", NotFound),
    (409, "api/conflict", Conflict),
    (409, "provider/conflict", Conflict),
    (422, "provider/unprocessable_entity", RequestRejected),
    (429, "api/too_many_requests", RateLimited),
    (429, "provider/too_many_requests", ProviderRateLimited),
    (500, "api/internal_error", TransientError),
    (502, "api/proxy_error", TransientError),
    (504, "api/proxy_timeout", TransientError),
    (500, "provider/server_error", TransientError),
    (503, "provider/server_error", TransientError),
    (504, "provider/timeout", TransientError),
    (501, "api/not_implemented", RequestRejected),
]


@pytest.mark.parametrize(("status", "type_", "cls"), TABLE, ids=[f"{s}-{t}" for s, t, _ in TABLE])
def test_each_documented_error_maps_to_its_class(
    status: int, type_: str, cls: type[ApiError]
) -> None:
    error = error_from_response(status, problem(status, type_), account="acc_1", now=NOW)
    assert type(error) is cls
    assert (error.status, error.type, error.detail, error.req_id, error.account) == (
        status,
        type_,
        "Some detail",
        "req_abc",
        "acc_1",
    )
    assert error.title == "A title"


def test_only_transient_errors_are_retryable() -> None:
    retryable = {cls for _, _, cls in TABLE if cls.retryable}
    assert retryable == {RateLimited, TransientError}
    assert TransportError.retryable and Unreachable.retryable
    assert not PaginationError.retryable  # a server that loops once loops again
    assert not ProviderRateLimited.retryable  # LinkedIn's limiter has no reliable window


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (AccountDisconnected, "account_auth"),
        (AccountRestricted, "account_restricted"),
        (UnsupportedAccount, "unsupported_account"),
        (ProviderRateLimited, "provider_rate_limited"),
        (NotFound, None),
        (TransientError, None),
    ],
)
def test_account_stopping_errors_carry_the_contract_reason(
    cls: type[ApiError], reason: str | None
) -> None:
    assert cls.account_reason == reason


def test_account_errors_share_one_base_that_is_not_the_run_wide_auth_error() -> None:
    for cls in (AccountDisconnected, AccountRestricted, UnsupportedAccount):
        assert issubclass(cls, AccountError)
    assert not issubclass(AuthError, AccountError)


UNKNOWN_TYPES = [
    (400, "api/something_new", RequestRejected),
    (401, "api/something_new", AuthError),
    (401, "provider/something_new", AccountDisconnected),
    (403, "api/something_new", AccountRestricted),
    (403, "provider/something_new", PermissionDenied),
    (404, "api/something_new", NotFound),
    (408, "api/something_new", TransientError),
    (409, "provider/something_new", Conflict),
    (418, "api/teapot", RequestRejected),
    (422, "api/something_new", RequestRejected),
    (429, "api/something_new", RateLimited),
    (429, "provider/something_new", ProviderRateLimited),
    (500, "api/something_new", TransientError),
    (501, "provider/something_new", RequestRejected),
    (502, "provider/something_new", TransientError),
    (503, "api/something_new", TransientError),
    (504, "api/something_new", TransientError),
    (599, "api/something_new", TransientError),
]


@pytest.mark.parametrize(
    ("status", "type_", "cls"), UNKNOWN_TYPES, ids=[f"{s}-{t}" for s, t, _ in UNKNOWN_TYPES]
)
def test_an_unknown_type_is_classified_by_status(
    status: int, type_: str, cls: type[ApiError]
) -> None:
    error = error_from_response(status, problem(status, type_), now=NOW)
    assert type(error) is cls
    assert error.type == type_  # kept as sent, for the ledger


def test_a_401_is_split_by_the_prefix_of_its_type_not_by_its_wording() -> None:
    # The prefix decides: run-wide for Unipile's own auth, one account for the provider's.
    api = error_from_response(401, problem(401, "api/whatever", detail="provider credentials"))
    provider = error_from_response(401, problem(401, "provider/whatever", detail="api key"))
    assert type(api) is AuthError
    assert type(provider) is AccountDisconnected


HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, HTML_502, TransientError),
        (503, b"", TransientError),
        (500, b"Internal Server Error", TransientError),
        (504, b"{", TransientError),
        (401, b"<html>Unauthorized</html>", AuthError),
        (403, b"", AccountRestricted),
        (404, b"Not Found", NotFound),
        (409, b"", Conflict),
        (400, b"[1, 2]", RequestRejected),
        (422, b'"just a string"', RequestRejected),
        (429, b"Too Many Requests", RateLimited),
        (501, b"", RequestRejected),
    ],
)
def test_a_body_that_is_not_a_problem_object_is_handled_by_status_alone(
    status: int, body: bytes, cls: type[ApiError]
) -> None:
    error = error_from_response(status, body, account="acc_1", now=NOW)
    assert type(error) is cls
    assert error.status == status
    assert error.type == f"http/{status}"
    assert error.detail is None and error.req_id is None
    assert error.account == "acc_1"


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps({"type": 42, "detail": ["no"], "req_id": {"x": 1}, "title": None}),
        orjson.dumps({"type": "", "status": "500"}),
        orjson.dumps({"type": None}),
        orjson.dumps({}),
    ],
)
def test_problem_fields_of_the_wrong_type_are_ignored(body: bytes) -> None:
    error = error_from_response(503, body)
    assert type(error) is TransientError
    assert (error.type, error.detail, error.req_id, error.title) == ("http/503", None, None, None)


def test_the_http_status_wins_over_the_status_inside_the_body() -> None:
    error = error_from_response(503, orjson.dumps({"type": "http/x", "status": 200}))
    assert error.status == 503
    assert type(error) is TransientError


def test_req_id_falls_back_to_the_x_request_id_header() -> None:
    error = error_from_response(502, HTML_502, {"X-Request-Id": "req_from_header"})
    assert error.req_id == "req_from_header"
    from_body = error_from_response(
        404, problem(404, "api/resource_not_found"), {"x-request-id": "req_from_header"}
    )
    assert from_body.req_id == "req_abc"


# ---------------------------------------------------------------------------------------------
# 429: Retry-After as seconds, as an HTTP date, or missing with x-ratelimit-reset
# ---------------------------------------------------------------------------------------------


def rate_limited(headers: dict[str, str] | CIMultiDict[str]) -> RateLimited:
    error = error_from_response(429, problem(429, "api/too_many_requests"), headers, now=NOW)
    assert isinstance(error, RateLimited)
    return error


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": http_date(NOW + 30)}, 30.0),
        ({"Retry-After": http_date(NOW - 30)}, 0.0),
        ({"x-ratelimit-reset": "12"}, 12.0),
        ({"X-RateLimit-Reset": "12", "Retry-After": "3"}, 3.0),
        ({"Retry-After": "soon", "x-ratelimit-reset": "9"}, 9.0),
        ({"Retry-After": "", "x-ratelimit-reset": "9"}, 9.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Tue, 99 Foo 2026 99:99:99 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_seconds_or_a_date_else_x_ratelimit_reset(
    headers: dict[str, str], expected: float | None
) -> None:
    assert rate_limited(headers).retry_after == expected


def test_retry_after_from_a_case_insensitive_multidict() -> None:
    headers: CIMultiDict[str] = CIMultiDict({"Retry-After": "4", "X-RateLimit-Reset": "60"})
    assert rate_limited(headers).retry_after == 4.0


def test_a_provider_429_has_no_retry_after_to_trust() -> None:
    error = error_from_response(
        429, problem(429, "provider/too_many_requests"), {"Retry-After": "5"}
    )
    assert type(error) is ProviderRateLimited
    assert not hasattr(error, "retry_after")


def test_parse_retry_after_directly() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("   ") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(http_date(NOW + 3600), now=NOW) == 3600.0


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0.0 <= seconds < float("inf")


@given(st.integers(min_value=400, max_value=599), st.binary(max_size=200))
def test_any_error_status_and_body_gives_an_api_error_with_that_status(
    status: int, body: bytes
) -> None:
    error = error_from_response(status, body, {"Retry-After": "1"}, now=NOW)
    assert isinstance(error, ApiError)
    assert error.status == status
    assert error.type  # always something for the ledger


# ---------------------------------------------------------------------------------------------
# Messages, reprs and the ledger view
# ---------------------------------------------------------------------------------------------


def test_message_names_status_type_detail_account_and_req_id() -> None:
    error = error_from_response(404, problem(404, "api/resource_not_found"), account="acc_1")
    assert str(error) == (
        "404 api/resource_not_found: Some detail (account acc_1) (req_id req_abc)"
    )
    assert repr(error).startswith("NotFound(status=404, type='api/resource_not_found'")


def test_a_long_detail_is_cut_in_the_message_but_kept_whole() -> None:
    detail = "x" * 1000
    error = error_from_response(400, problem(400, "api/invalid_parameters", detail=detail))
    assert error.detail == detail
    assert len(str(error)) < 400


def test_info_is_the_ledger_error_object() -> None:
    error = error_from_response(409, problem(409, "api/conflict"))
    assert error.info.as_dict() == {
        "status": 409,
        "type": "api/conflict",
        "detail": "Some detail",
        "req_id": "req_abc",
    }


def test_transport_errors_have_no_status_and_a_transport_type() -> None:
    error = TransportError("timeout", account="acc_1")
    assert error.status is None
    assert error.type == "transport/timeout"
    assert error.info.as_dict()["status"] is None
    assert str(error) == "- transport/timeout (account acc_1)"
    assert isinstance(error, TransientError)


def test_errors_keep_no_secret_they_were_not_given() -> None:
    # The tree is built only from the server's answer: there is no field for a key to land in.
    signature = inspect.signature(ApiError.__init__)
    assert not any("key" in name for name in signature.parameters)
    error = error_from_response(401, problem(401, "api/missing_authorization"), account="acc_1")
    text = str(error) + repr(error) + "".join(traceback.format_exception(error))
    assert "X-API-KEY" not in text


def test_every_error_is_a_bulkgroups_error_whose_exit_code_is_the_clis() -> None:
    # 1: nothing was sent that changes anything; 4: the ledger could not be written.
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, BulkGroupsError)
            assert obj.exit_code == (4 if obj is errors.LedgerUnwritable else 1), name


def test_the_engines_control_flow_signals_are_not_part_of_the_public_tree() -> None:
    from bulkgroups.attempts import AccountStopped, DeferAccount
    from bulkgroups.engine.stops import BudgetSpent, SendingStopped

    for signal in (AccountStopped, DeferAccount, BudgetSpent, SendingStopped):
        assert not issubclass(signal, BulkGroupsError), signal
    import bulkgroups

    exported = {getattr(bulkgroups, n) for n in bulkgroups.__all__}
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert obj in exported, f"bulkgroups.{name} is not exported"


def public_top_level_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def test_errors_all_is_sorted_and_complete() -> None:
    assert errors.__all__ == sorted(errors.__all__)
    assert set(errors.__all__) == public_top_level_names(inspect.getsource(errors))
