"""OpenAI-style error answers of the proxy, the plugin-failure answer included."""

from __future__ import annotations

from starlette.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def openai_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    """An error in the shape OpenAI clients parse: {"error": {"message", "type", "code"}}."""
    body = {
        "error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": None, "code": code}
    }
    return JSONResponse(body, status_code=status)


def plugin_failure(slug: str, hook: str) -> JSONResponse:
    """503 for a fail_closed plugin that could not decide: which plugin and hook, nothing more.

    The reason (paths, the plugin's last output) is logged and kept in the plugin's last_error.
    """
    return openai_error(
        503,
        f"plugin {slug} failed during {hook} and its failure policy is fail_closed; "
        "the request was not forwarded",
        "plugin_failed",
    )
