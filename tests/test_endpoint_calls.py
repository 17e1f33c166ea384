"""Custom endpoint calls through the host to a real plugin process: declared routes, unary and
streamed answers, failures, and routes the host refuses at load."""

from __future__ import annotations

import json

import pytest

from solstice.host import PluginCallError, PluginConfigError, PluginHost, PluginSpec, PluginState
from solstice.protocol import pb
from solstice.sdk import Plugin
from solstice.sdk.routes import respond, route, routes_of
from tests.conftest import ROOT, fast_settings

ROUTES = ROOT / "tests" / "plugins" / "routes.py"


def _request(route: str, path: str, method: str = "GET", **fields: object) -> pb.EndpointRequest:
    params = fields.pop("params", {})
    return pb.EndpointRequest(
        context=pb.RequestContext(request_id="req-1"),
        request=pb.HttpRequest(method=method, path=path, **fields),  # type: ignore[arg-type]
        route=route,
        params=params,  # type: ignore[arg-type]
    )


@pytest.fixture
async def routes(host: PluginHost) -> PluginHost:
    status = await host.load(PluginSpec(slug="routes", command=f"file://{ROUTES}", config={"greeting": "hi"}))
    assert status.state == PluginState.HEALTHY
    return host


async def test_the_plugin_declares_its_routes(routes: PluginHost) -> None:
    info = routes.status("routes").info
    assert info is not None and pb.HOOK_CUSTOM_ENDPOINT in info.hooks
    declared = {e.path: e for e in info.endpoints}
    assert list(declared) == [
        "/echo/{name}", "/store", "/count/{n}", "/hold", "/broken", "/wrong", "/headers", "/sleep/{ms}",
        "/files/{rest...}",
    ]  # fmt: skip
    assert declared["/store"].require_auth and list(declared["/store"].methods) == ["POST"]
    assert declared["/store"].description == "Answers what it received, and for which app."
    assert declared["/echo/{name}"].description == "Greets the name in the path."
    assert declared["/count/{n}"].stream and not declared["/echo/{name}"].stream
    assert list(declared["/files/{rest...}"].methods) == ["GET", "HEAD"]


async def test_a_unary_route_answers_with_the_configured_plugin(routes: PluginHost) -> None:
    answer = await routes.client("routes").handle_endpoint(
        _request("/echo/{name}", "/echo/ada", query="x=1", params={"name": "ada"})
    )
    assert answer.status == 200
    assert json.loads(answer.body) == {"greeting": "hi ada", "query": "x=1"}
    assert [(h.name, h.value) for h in answer.headers] == [("content-type", "application/json")]


async def test_a_route_sees_the_app_the_gateway_checked(routes: PluginHost) -> None:
    request = _request("/store", "/store", "POST", body=b"payload")
    request.context.app.id = "app-7"
    request.authenticated = True
    answer = await routes.client("routes").handle_endpoint(request)
    assert answer.status == 201 and ("x-stored", "yes") in [(h.name, h.value) for h in answer.headers]
    assert json.loads(answer.body) == {"body": "payload", "app": "app-7", "authenticated": True}


async def test_a_streamed_route_sends_its_head_then_each_piece(routes: PluginHost) -> None:
    chunks = [
        chunk
        async for chunk in routes.client("routes").handle_endpoint_stream(
            _request("/count/{n}", "/count/3", params={"n": "3"})
        )
    ]
    head, *body = chunks
    assert head.WhichOneof("part") == "head" and head.head.status == 200
    assert [(h.name, h.value) for h in head.head.headers] == [("content-type", "text/plain")]
    assert [c.body for c in body] == [b"0\n", b"1\n", b"2\n"]


async def test_closing_a_stream_early_cancels_it(routes: PluginHost) -> None:
    stream = routes.client("routes").handle_endpoint_stream(
        _request("/count/{n}", "/count/100000", params={"n": "100000"})
    )
    first = await anext(stream)
    assert first.WhichOneof("part") == "head"
    await stream.aclose()
    # The plugin is still fine for the next call.
    answer = await routes.client("routes").handle_endpoint(
        _request("/files/{rest...}", "/files/a/b", params={"rest": "a/b"})
    )
    assert answer.body == b"a/b"


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ("/broken", "route /broken failed: RuntimeError: the broken route broke"),
        ("/wrong", "route /wrong answered str; return respond(...) instead"),
        ("/nowhere", "has no unary route GET '/nowhere'"),
        ("/count/{n}", "has no unary route GET '/count/{n}'"),
    ],
)
async def test_a_failing_route_is_a_call_error_and_the_plugin_keeps_serving(
    routes: PluginHost, route: str, error: str
) -> None:
    with pytest.raises(PluginCallError) as info:
        await routes.client("routes").handle_endpoint(_request(route, route))
    assert info.value.hook == "custom_endpoint"
    assert error in str(info.value)
    assert routes.status("routes").state == PluginState.HEALTHY


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        (
            "overlap",
            "plugin bad declares a route Solstice cannot serve: routes '/echo/{name}' and "
            "'/{everything...}' both match some GET requests; make their literal segments differ "
            "or serve them as one route",
        ),
        (
            "malformed",
            "plugin bad declares a route Solstice cannot serve: route '/a/../b' has a bad segment '..'; "
            "a path is segments of letters, digits and -._~!$&'()*+,;=:@, or {name}, or a last {name...}",
        ),
    ],
)
async def test_the_host_refuses_routes_it_cannot_serve(
    monkeypatch: pytest.MonkeyPatch, mode: str, error: str
) -> None:
    monkeypatch.setenv("ROUTES_MODE", mode)  # before the settings, which keep the environment
    async with PluginHost(fast_settings()) as host:
        with pytest.raises(PluginConfigError) as info:
            await host.load(PluginSpec(slug="bad", command=f"file://{ROUTES}", env=("ROUTES_MODE",)))
        assert str(info.value) == error
        assert host.status("bad").state == PluginState.FAILED


def test_the_sdk_refuses_overlapping_routes_when_the_class_is_read() -> None:
    class Clash(Plugin):
        @route("/items/{id}")
        def one(self, request: pb.EndpointRequest) -> pb.HttpResponse:
            return respond()

        @route("/items/new")
        def other(self, request: pb.EndpointRequest) -> pb.HttpResponse:
            return respond()

    with pytest.raises(ValueError, match=r"routes '/items/\{id\}' and '/items/new' both match some GET"):
        routes_of(Clash)


def test_a_bad_path_fails_at_the_decorator() -> None:
    with pytest.raises(ValueError, match="route 'items' must start with '/'"):
        route("items")


def test_an_override_without_route_is_no_longer_a_route() -> None:
    class Base(Plugin):
        @route("/a")
        def a(self, request: pb.EndpointRequest) -> pb.HttpResponse:
            return respond()

    class Child(Base):
        def a(self, request: pb.EndpointRequest) -> pb.HttpResponse:
            return respond()

    assert [spec.path for spec in routes_of(Base)] == ["/a"]
    assert routes_of(Child) == []


def test_respond_builds_the_answer() -> None:
    answer = respond(json={"ok": True}, status=202, headers=[("x-a", "1")])
    assert answer.status == 202 and json.loads(answer.body) == {"ok": True}
    assert [(h.name, h.value) for h in answer.headers] == [("x-a", "1"), ("content-type", "application/json")]
    typed = respond("hi", headers={"Content-Type": "text/html"}, media_type="text/plain")
    assert [(h.name, h.value) for h in typed.headers] == [("Content-Type", "text/html")]
