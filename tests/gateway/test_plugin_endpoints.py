"""Custom endpoints at /plugins/{slug}/…: routing, the app key check, answers, limits and failures,
against the app in this process and a real plugin process (tests/plugins/routes.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.conftest import ROOT, wait_until
from tests.gateway.conftest import Route, plugin
from tests.inprocess import InProcess, app_settings
from tests.server import Server

ROUTES = f"file://{ROOT / 'tests' / 'plugins' / 'routes.py'}"


def _get(gw: InProcess, path: str, **kwargs: object) -> httpx.Response:
    with gw.client(token="") as client:
        return client.request(str(kwargs.pop("method", "GET")), path, **kwargs)  # type: ignore[arg-type]


def test_a_route_answers_with_the_plugin_configuration(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES, config={"greeting": "hey"})
    answer = _get(gw, f"/plugins/{slug}/echo/ada?x=1")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"greeting": "hey ada", "query": "x=1"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"], "the request id middleware covers plugin routes too"
    files = _get(gw, f"/plugins/{slug}/files/a/b.txt")
    assert files.text == "a/b.txt" and files.headers["content-type"] == "text/plain"
    assert _get(gw, f"/plugins/{slug}/files/a/b.txt", method="HEAD").status_code == 200


def test_require_auth_is_the_app_key_check_of_llm(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES)
    route = Route(gw)  # an app with a key
    anonymous = _get(gw, f"/plugins/{slug}/store", method="POST", content=b"x")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"] == "missing API key; send 'Authorization: Bearer <app key>'"
    wrong = _get(gw, f"/plugins/{slug}/store", method="POST", headers={"Authorization": "Bearer sk-nope"})
    assert (
        wrong.status_code == 401 and wrong.json()["error"]["message"] == "the API key is invalid or revoked"
    )
    stored = _get(
        gw, f"/plugins/{slug}/store", method="POST", content=b"payload",
        headers={"Authorization": f"Bearer {route.key}"},
    )  # fmt: skip
    assert stored.status_code == 201, stored.text
    assert stored.json() == {"body": "payload", "app": str(route.app_id), "authenticated": True}
    assert stored.headers["x-stored"] == "yes"
    with gw.client() as client:
        client.patch(f"/api/v1/apps/{route.app_id}", json={"is_active": False})
    inactive = _get(
        gw, f"/plugins/{slug}/store", method="POST", headers={"Authorization": f"Bearer {route.key}"}
    )
    assert inactive.status_code == 401 and "is inactive" in inactive.json()["error"]["message"]


def test_the_plugin_never_sees_the_app_key(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES)
    sent = {"Authorization": "Bearer sk-anything", "X-Api-Key": "k1", "Api-Key": "k2", "X-Mine": "kept"}
    seen = dict(_get(gw, f"/plugins/{slug}/headers", headers=sent).json())
    assert seen["x-mine"] == "kept"
    assert not {"authorization", "x-api-key", "api-key"} & set(seen)


def test_streamed_routes_answer_their_pieces(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES)
    counted = _get(gw, f"/plugins/{slug}/count/4")
    assert counted.status_code == 200
    assert counted.headers["content-type"] == "text/plain"
    assert counted.text == "0\n1\n2\n3\n"


def test_unknown_plugins_routes_and_methods(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES)
    hook_only = plugin(gw, "pre_auth")
    nobody = _get(gw, "/plugins/nobody/echo/x")
    assert nobody.status_code == 404 and "no active plugin 'nobody' serves endpoints" in nobody.text
    # Loaded, but not registered for custom_endpoint: its routes (if any) are not served.
    assert _get(gw, f"/plugins/{hook_only}/echo/x").status_code == 404
    no_route = _get(gw, f"/plugins/{slug}/nowhere")
    assert no_route.status_code == 404
    assert no_route.json()["error"]["message"] == f"plugin {slug} has no route for GET /nowhere"
    wrong_method = _get(gw, f"/plugins/{slug}/echo/x", method="DELETE")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    with gw.client() as client:
        client.patch(f"/api/v1/plugins/{slug}", json={"is_active": False})
    assert _get(gw, f"/plugins/{slug}/echo/x").status_code == 404


def test_failures_are_json_errors_without_plugin_details(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=ROUTES)
    broken = _get(gw, f"/plugins/{slug}/broken")
    assert broken.status_code == 502
    assert broken.json()["error"] == {
        "message": f"plugin {slug} failed to answer the request", "type": "upstream_error", "param": None,
        "code": "plugin_failed",
    }  # fmt: skip
    assert "RuntimeError" not in broken.text and "routes.py" not in broken.text
    assert _get(gw, f"/plugins/{slug}/wrong").status_code == 502
    big = _get(gw, f"/plugins/{slug}/store", method="POST", content=b"x" * 70000)
    assert big.status_code == 413
    metrics = _get(gw, "/metrics").text
    assert (
        f'solstice_plugin_endpoint_requests_total{{plugin="{slug}",route="/broken",status="502"}} 1.0'
        in metrics
    )
    assert f'solstice_plugin_endpoint_duration_seconds_count{{plugin="{slug}",route="/store"}} 1.0' in metrics


def test_a_slow_route_is_504_and_a_dead_plugin_503(tmp_path: Path) -> None:
    gw = InProcess(app_settings(tmp_path, plugin_endpoint_timeout=0.5)).start()
    try:
        slug = plugin(gw, "custom_endpoint", command=ROUTES)
        assert _get(gw, f"/plugins/{slug}/sleep/10").text == "awake"
        slow = _get(gw, f"/plugins/{slug}/sleep/3000")
        assert slow.status_code == 504
        assert slow.json()["error"]["message"] == f"plugin {slug} did not answer in time"
        # A stream has its own, longer deadline.
        assert _get(gw, f"/plugins/{slug}/count/60").text.count("\n") == 60
        with gw.client() as client:
            current = client.get(f"/api/v1/plugins/{slug}/health").json()["pid"]
        os.kill(current, signal.SIGSTOP)  # alive, but answers nothing: the deadline decides
        try:
            assert _get(gw, f"/plugins/{slug}/echo/x").status_code == 504
        finally:
            os.kill(current, signal.SIGCONT)
        os.kill(current, signal.SIGKILL)
        down = wait_until(
            lambda: (r := _get(gw, f"/plugins/{slug}/echo/x")).status_code == 503 and r,
            what="503 while the plugin restarts",
        )
        assert down.json()["error"]["message"] == f"plugin {slug} is not available; try again shortly"
    finally:
        gw.stop()


def test_a_stream_reaches_the_client_as_it_comes_and_a_client_that_leaves_cancels_it(tmp_path: Path) -> None:
    # A real server: the in-process transport buffers whole answers.
    cancel_file = tmp_path / "cancelled.txt"
    server = Server(tmp_path).wait_ready()
    try:
        slug = plugin(server, "custom_endpoint", command=ROUTES, config={"cancel_file": str(cancel_file)})
        with httpx.stream("GET", f"{server.url}/plugins/{slug}/hold", timeout=10) as held:
            assert held.status_code == 200 and held.headers["content-type"] == "text/event-stream"
            # The first event arrives while the plugin still waits: relayed, not buffered.
            assert next(held.iter_lines()) == "data: first"
        wait_until(lambda: cancel_file.exists() and "cancelled" in cancel_file.read_text(), 10, server.log,
                   what="the plugin's stream to be cancelled")  # fmt: skip
    finally:
        server.stop()
