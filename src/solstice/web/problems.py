"""RFC 9457 problem details (application/problem+json): the error body of every non-proxy answer."""

from __future__ import annotations

from http import HTTPStatus

from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response of a problem with a one-sentence `detail`."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
