"""Errors as RFC 9457 problem details (application/problem+json), one sentence each."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from solstice.control.errors import ControlError
from solstice.store.health import storage_failure
from solstice.web.problems import problem_response

log = structlog.get_logger("solstice.api")


class Problem(Exception):
    """An error response with a status and a one-sentence detail."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def describe_validation(errors: list[Any]) -> str:
    """One sentence naming the first invalid field and why."""
    if not errors:
        return "the request is invalid"
    error = errors[0]
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location)
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown field {field!r}; remove it (field names are case-sensitive)"
    if kind == "missing":
        return f"field {field!r} is required"
    secret = any(word in field.lower() for word in ("key", "token", "secret", "password"))
    if (
        kind.endswith("_type")
        and not secret
        and isinstance(error.get("input"), bool | int | float | str | None)
    ):
        # Values are never coerced (true is not 1): say what was sent.
        message = f"{message}, not {json.dumps(error['input'])[:40]}"
    if not field or re.search(rf"\b{re.escape(field)}\b", message):
        return message
    return f"{field}: {message[0].lower() + message[1:]}"


def _store_location(request: Request) -> str:
    settings = request.app.state.settings
    return "the PostgreSQL server's storage" if settings.database_url else str(settings.data_dir)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem response."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.headers)

    @app.exception_handler(ControlError)
    async def _control(request: Request, exc: ControlError) -> JSONResponse:
        return problem_response(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, describe_validation(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _validation(request: Request, exc: ValidationError) -> JSONResponse:
        return problem_response(422, describe_validation(exc.errors()))

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        reason = storage_failure(exc)
        if reason is None:
            raise exc  # not a storage condition: the server error handler logs it
        log.error("the store cannot write", reason=reason, path=request.url.path)
        return problem_response(
            503,
            f"the server cannot write its data ({reason}); free disk space or make "
            f"{_store_location(request)} writable, then retry",
            {"Retry-After": "10"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback; the client gets the same shape as every other error.
        request_id = request.scope.get("state", {}).get("request_id", "")
        return problem_response(
            500, f"internal error (request id {request_id}); the server log has the details"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /openapi.json for the API"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(exc.status_code, detail, getattr(exc, "headers", None))
