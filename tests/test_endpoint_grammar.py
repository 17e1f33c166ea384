"""The route grammar of custom endpoints: what parses, what matches, what overlaps, what is refused."""

from __future__ import annotations

import pytest

from solstice.endpoints import MAX_ROUTES, RouteError, check_routes, find_route, parse_route


@pytest.mark.parametrize(
    ("pattern", "path", "captures"),
    [
        ("/", "/", {}),
        ("/", "", {}),
        ("/echo/{name}", "/echo/ada", {"name": "ada"}),
        ("/echo/{name}", "/echo/", None),
        ("/echo/{name}", "/echo/ada/more", None),
        ("/a/{x}/b/{y}", "/a/1/b/2", {"x": "1", "y": "2"}),
        ("/files/{rest...}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/files/{rest...}", "/files", {"rest": ""}),
        ("/files/{rest...}", "/file", None),
        ("/{all...}", "/", {"all": ""}),
        ("/webhooks", "/webhooks/", None),
        ("/v1:run", "/v1:run", {}),
    ],
)
def test_matching(pattern: str, path: str, captures: dict[str, str] | None) -> None:
    assert parse_route(pattern, ["GET"]).match(path) == captures


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("echo", "route 'echo' must start with '/'"),
        ("/a/../b", "route '/a/../b' has a bad segment '..'"),
        ("/a//b", "route '/a//b' has a bad segment ''"),
        ("/{rest...}/more", "has a bad segment '{rest...}'"),
        ("/{1x}", "has a bad segment '{1x}'"),
        ("/a b", "has a bad segment 'a b'"),
        ("/a%20b", "has a bad segment 'a%20b'"),
        ("/{x}/{x}", "captures {x} twice"),
        ("/" + "a" * 600, "at most 512 characters"),
    ],
)
def test_bad_paths_are_refused_with_the_rule(pattern: str, error: str) -> None:
    with pytest.raises(RouteError, match=None) as info:
        parse_route(pattern, ["GET"])
    assert error in str(info.value)


def test_methods_must_be_known() -> None:
    with pytest.raises(RouteError, match=r"has methods \['FETCH'\]; use one or more of GET, HEAD"):
        parse_route("/x", ["fetch"])
    with pytest.raises(RouteError, match="has methods none"):
        parse_route("/x", [])
    assert parse_route("/x", ["post", "GET"]).methods == {"POST", "GET"}


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("/items/{id}", "/items/new", True),
        ("/items", "/items/{id}", False),
        ("/a/{x}", "/b/{y}", False),
        ("/files/{rest...}", "/files", True),
        ("/files/{rest...}", "/files/a/b", True),
        ("/files/{rest...}", "/other", False),
        ("/{x}/a", "/b/{y}", True),
        ("/", "/{all...}", True),
    ],
)
def test_overlap_is_any_path_both_accept(first: str, second: str, overlap: bool) -> None:
    assert parse_route(first, ["GET"]).overlaps(parse_route(second, ["GET"])) is overlap
    assert not parse_route(first, ["GET"]).overlaps(parse_route(second, ["POST"]))


def test_overlapping_routes_of_one_plugin_are_refused_together() -> None:
    with pytest.raises(RouteError) as info:
        check_routes([("/items/{id}", ["GET", "DELETE"]), ("/items/new", ["POST", "GET"])])
    assert str(info.value) == (
        "routes '/items/{id}' and '/items/new' both match some GET requests; "
        "make their literal segments differ or serve them as one route"
    )
    many = [(f"/r{n}", ["GET"]) for n in range(MAX_ROUTES + 1)]
    with pytest.raises(RouteError, match=f"a plugin may serve at most {MAX_ROUTES}"):
        check_routes(many)


def test_find_route_takes_method_and_path() -> None:
    routes = check_routes([("/items", ["GET"]), ("/items", ["POST"]), ("/items/{id}", ["GET"])])
    found = find_route(routes, "POST", "/items")
    assert found is not None and found[0] is routes[1]
    assert find_route(routes, "GET", "/items/7") == (routes[2], {"id": "7"})
    assert find_route(routes, "DELETE", "/items/7") is None


def test_the_host_takes_methods_in_any_case_and_keeps_how_each_route_is_served() -> None:
    from solstice.host.instance import routes_of
    from solstice.host.spec import PluginSpec
    from solstice.protocol import pb

    info = pb.PluginInfo(
        endpoints=[
            pb.Endpoint(path="/hooks", methods=["post"], require_auth=True, description="deliveries"),
            pb.Endpoint(path="/events", methods=["Get"], stream=True),
        ]
    )
    hooks, events = routes_of(PluginSpec(slug="p", command="grpc://127.0.0.1:1"), info)
    # A plugin written without the SDK may send lower case: the route still answers POST, and
    # still requires an app key, since the gateway reads both from the route it matched.
    assert find_route([hooks, events], "POST", "/hooks") == (hooks, {})
    assert (hooks.methods, hooks.require_auth, hooks.stream, hooks.description) == (
        frozenset({"POST"}), True, False, "deliveries",
    )  # fmt: skip
    assert (events.methods, events.require_auth, events.stream) == (frozenset({"GET"}), False, True)
