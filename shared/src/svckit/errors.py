"""The error envelope shared by every service.

Every error a client sees has one shape (ARCHITECTURE.md, "Errors")::

    {"detail": ..., "code": "not_found", "status_code": 404,
     "path": "/items/5", "request_id": "..."}

422 responses add ``errors: [{loc, msg, type}]``; their ``detail`` is that same list, as in
FastAPI's own 422 body (minus pydantic's ``input`` and ``ctx``, which could echo a password), so
clients written for FastAPI keep working. Routes raise :class:`ServiceError` (or
FastAPI's ``HTTPException``); :func:`install_error_handlers` renders them. Nothing else ever
builds error JSON, and no stack trace or SQL reaches a client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from svckit.request_id import current_request_id

logger = logging.getLogger("svckit.errors")

_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def code_for_status(status_code: int) -> str:
    """The default machine-readable ``code`` for an HTTP status."""
    if status_code in _CODES:
        return _CODES[status_code]
    try:
        phrase = HTTPStatus(status_code).phrase.lower()
    except ValueError:
        return "error"
    # "I'm a Teapot" -> "i_m_a_teapot": codes are identifiers clients switch on
    return re.sub(r"[^a-z0-9]+", "_", phrase).strip("_")


class ServiceError(Exception):
    """A domain error that knows how it is shown to a client.

    Subclass it per domain with a fixed ``status_code`` and ``code``, or raise it directly.
    """

    status_code: int = 400
    code: str | None = None
    detail: Any = None

    def __init__(
        self,
        detail: Any = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        if detail is not None:
            self.detail = detail
        if self.detail is None:
            self.detail = _phrase(self.status_code)
        self.headers = dict(headers or {})
        # Members added to the envelope, e.g. RFC 6749 §5.2 ``error`` / ``error_description``.
        self.extra = dict(extra or {})
        super().__init__(str(self.detail))


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"
    detail = "A dependency of this service is unavailable; try again shortly"


def error_body(
    request: Request,
    status_code: int,
    detail: Any,
    code: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "detail": detail,
        "code": code or code_for_status(status_code),
        "status_code": status_code,
        "path": request.url.path,
        "request_id": current_request_id(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        # Never overrides an envelope member.
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def error_response(
    request: Request,
    status_code: int,
    detail: Any,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(error_body(request, status_code, detail, code, errors, extra)),
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's "input" and "ctx" could echo a password back.
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(
        request, exc.status_code, exc.detail, code=exc.code, headers=exc.headers, extra=exc.extra
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, exc.detail, headers=exc.headers)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    return error_response(request, 422, errors, errors=errors)


def unhandled_error(scope: Scope, exc: Exception) -> JSONResponse:
    """Log an exception no handler took, with its stack trace, and answer a 500 in the
    envelope without one."""
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"method": scope.get("method"), "path": scope.get("path")},
    )
    return error_response(Request(scope), 500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` in the shared envelope."""
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
