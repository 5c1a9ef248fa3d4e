"""The one place where errors become HTTP statuses and a consistent JSON body.

Every error response of the API has the body
``{"error": {"type": ..., "message": ..., "problems": [{"location": ..., "message": ...}]}}``.

======  ======================  ==============================================================
status  type                    raised by
======  ======================  ==============================================================
400     malformed_json          a request body that is not JSON
401     unauthenticated         no, bad, expired or revoked credentials (AuthenticationError)
403     forbidden               the role does not allow it, or the CSRF token is missing
                                (PermissionDeniedError)
403     separation_of_duties    approving one's own request (SeparationOfDutiesError)
404     not_found               an unknown id or name (NotFoundError), or an unknown path
405     method_not_allowed      a method the path does not have
409     conflict                another engine drives the rollout (LeaseHeld), no safe plan
                                (PlanError), a write that raced another (IntegrityError)
413     too_large               a request body over the limit
429     too_many_requests       too many failed logins from one address (Retry-After says when
                                to try again)
422     bad_input / validation  bad input (InputError), or fields of the wrong type or shape
502     upstream                an advisory feed or a hypervisor driver failed
503     store_unavailable       the store cannot be used (StoreError, OperationalError)
500     internal                a bug (the trace goes to the server log, never to the client)
======  ======================  ==============================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from hvpatch.errors import (
    AuthenticationError,
    DriverError,
    FeedError,
    HvpatchError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    PlanError,
    Problem,
    SeparationOfDutiesError,
    StoreError,
    TooManyAttemptsError,
)
from hvpatch.orchestration.lease import LeaseHeld

__all__ = ["STATUS", "error_response", "install"]

log = logging.getLogger("hvpatch.api")

#: (error class, HTTP status, type in the body): the most specific class first
STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (TooManyAttemptsError, 429, "too_many_requests"),
    (PermissionDeniedError, 403, "forbidden"),
    (SeparationOfDutiesError, 403, "separation_of_duties"),
    (NotFoundError, 404, "not_found"),
    (LeaseHeld, 409, "conflict"),
    (PlanError, 409, "conflict"),
    (InputError, 422, "bad_input"),
    (StoreError, 503, "store_unavailable"),
    (FeedError, 502, "upstream"),
    (DriverError, 502, "upstream"),
    (HvpatchError, 500, "error"),
    (IntegrityError, 409, "conflict"),
    (DataError, 422, "bad_input"),
    (OperationalError, 503, "store_unavailable"),
)
_HTTP_TYPES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "validation"}


def error_response(status: int, kind: str, message: str,
                   problems: Iterable[Problem] = (),
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error response every failure of the API uses."""
    body = {"error": {"type": kind, "message": message,
                      "problems": [{"location": p.location, "message": p.message}
                                   for p in problems]}}
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="hvpatch"', **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: BaseException) -> tuple[int, str]:
    """The status and body type of an error (most specific class wins)."""
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


def _message(exc: BaseException) -> str:
    if isinstance(exc, HvpatchError):
        return str(exc.args[0] if exc.args else exc)
    if isinstance(exc, IntegrityError):
        return "the change conflicts with one made at the same moment; try again"
    if isinstance(exc, DataError):
        return "a value cannot be stored (control characters, or out of range)"
    return "the store cannot be used now; try again later"


async def _hvpatch_error(_request: Request, exc: Exception) -> JSONResponse:
    status, kind = status_for(exc)
    if status >= 500:
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    headers = ({"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttemptsError)
               else None)
    return error_response(status, kind, _message(exc), getattr(exc, "problems", ()), headers)


def _location(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON",
                              [Problem(_location(e.get("loc", ())), str(e.get("msg", "")))
                               for e in errors if e.get("type") == "json_invalid"])
    return error_response(422, "validation", "the request does not have the expected shape",
                          [Problem(_location(e.get("loc", ())), str(e.get("msg", "")))
                           for e in errors])


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else kind.replace("_", " ")
    return error_response(exc.status_code, kind, message, headers=dict(exc.headers or {}))


async def _bug(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ResponseValidationError):
        log.error("a response does not match its schema: %s", exc.errors())
    else:
        log.error("unexpected error", exc_info=exc)
    return error_response(500, "internal", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    for cls, _, _ in STATUS:
        assert issubclass(cls, Exception)
        app.add_exception_handler(cls, _hvpatch_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)
