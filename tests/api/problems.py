"""The shape every API error shares: an RFC 9457 problem with a one-line detail."""

from __future__ import annotations

import httpx

from solstice.web.problems import PROBLEM_JSON


def problem_detail(response: httpx.Response, status: int) -> str:
    """The detail of a problem response with `status`, after checking its media type and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == status
    assert "\n" not in problem["detail"]
    detail: str = problem["detail"]
    return detail
