"""The handlers that give every error, ours and the framework's, the one body.

`AppError`s (`core/errors.py`) are rendered with their status and headers; FastAPI's validation
errors, Starlette's 404/405/413 and anything unexpected are put in the same `{code, message,
details}` body, so a client parses exactly one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ExceptionHandler, Scope

from backend.app.core.errors import STATUS_BY_CODE, AppError, ErrorCode, error_body
from backend.app.db.engine import DatabaseUnavailable

__all__ = [
    "database_unavailable_response",
    "error_response",
    "install_error_handlers",
    "methods_of_path",
]

logger = logging.getLogger(__name__)


def _json_error(
    code: ErrorCode, message: str, details: dict[str, Any] | None = None, **kwargs: Any
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=STATUS_BY_CODE[code], **kwargs
    )


def error_response(exc: AppError) -> JSONResponse:
    """The response for an AppError, for a route that must add to it (a cleared cookie)."""
    return _json_error(exc.code, exc.message, exc.details, headers=exc.headers())


async def _handle_app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 -- registered for AppError only
    return error_response(exc)


async def _handle_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 -- registered for this type only
    # Only where and why: pydantic's `input` and `ctx` would echo the submitted value (a password).
    errors = [
        {"loc": list(error["loc"]), "type": error["type"], "msg": error["msg"]}
        for error in exc.errors()
    ]
    return _json_error(ErrorCode.VALIDATION_ERROR, "The request is not valid", {"errors": errors})


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def _http_exception_handler(routes: Sequence[BaseRoute]) -> ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 -- registered for this type
        if exc.status_code == 400:
            # The framework's only 400: a body it could not even decode (not UTF-8). To a client
            # it is the same mistake as malformed JSON, which is a 422.
            return _json_error(ErrorCode.VALIDATION_ERROR, "The request body could not be decoded")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only; a
            # client needs every method the path has (RFC 9110 §15.5.6).
            headers["Allow"] = ", ".join(methods_of_path(routes, request.scope))
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    return handle


def methods_of_path(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method the request's path is served with, for a 405's `Allow`."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route | APIRoute) and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def database_unavailable_response(
    exc: DatabaseUnavailable, details: dict[str, Any] | None = None
) -> JSONResponse:
    return _json_error(
        ErrorCode.DATABASE_UNAVAILABLE,
        "The database is unavailable; try again shortly",
        details,
        headers={"Retry-After": str(exc.retry_after_seconds)},
    )


async def _handle_database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatabaseUnavailable)  # noqa: S101 -- registered for this type only
    logger.warning("database unavailable", extra={"error": str(exc)})
    return database_unavailable_response(exc)


async def _handle_unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return _json_error(ErrorCode.INTERNAL_ERROR, "Internal server error")


def install_error_handlers(app: FastAPI, *, routes: Sequence[BaseRoute]) -> None:
    """Give every error, ours and the framework's, the one body.

    Args:
        routes: every route of the app, for the `Allow` header of a 405.
    """
    app.add_exception_handler(AppError, _handle_app_error)
    app.add_exception_handler(DatabaseUnavailable, _handle_database_unavailable)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler(routes))
    app.add_exception_handler(Exception, _handle_unexpected)
