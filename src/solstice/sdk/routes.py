"""Custom endpoints in the plugin SDK: the @route decorator and the answers a route returns."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from solstice.endpoints import check_routes, parse_route
from solstice.protocol import pb
from solstice.sdk.plugin import _headers

_ROUTE_ATTR = "__solstice_route__"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteSpec:
    """A route as a plugin declares it, and the name of the method that serves it."""

    path: str
    methods: tuple[str, ...]
    description: str
    require_auth: bool
    stream: bool
    media_type: str
    handler: str = ""

    def as_endpoint(self) -> pb.Endpoint:
        """The route as GetInfo reports it."""
        return pb.Endpoint(
            path=self.path,
            methods=list(self.methods),
            description=self.description,
            require_auth=self.require_auth,
            stream=self.stream,
        )


def route(
    path: str,
    *,
    methods: Sequence[str] = ("GET",),
    description: str = "",
    require_auth: bool = False,
    stream: bool = False,
    media_type: str = "application/octet-stream",
) -> Callable[[F], F]:
    """Serve the decorated method at /plugins/{slug}{path}.

    The method takes the pb.EndpointRequest and returns respond(...) (may be async); with
    ``stream=True`` it is an async generator of bytes or str, optionally led by respond(...)
    for the status and headers (else 200 with ``media_type``). A bad path raises RouteError here.
    """
    methods = tuple(method.upper() for method in methods)
    parse_route(path, methods)

    def mark(handler: F) -> F:
        summary = description or (handler.__doc__ or "").strip().split("\n")[0]
        spec = RouteSpec(path, methods, summary, require_auth, stream, media_type, handler.__name__)
        setattr(handler, _ROUTE_ATTR, spec)
        return handler

    return mark


def routes_of(cls: type) -> list[RouteSpec]:
    """The routes a plugin class declares, in definition order, checked as the host checks them."""
    found: dict[str, RouteSpec] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            spec = getattr(value, _ROUTE_ATTR, None)
            if isinstance(spec, RouteSpec):
                found[name] = spec
            elif name in found:
                del found[name]  # overridden without @route: no longer a route
    specs = list(found.values())
    check_routes([(spec.path, spec.methods) for spec in specs])
    return specs


def respond(
    body: bytes | str = b"",
    status: int = 200,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    *,
    json: Any = None,
    media_type: str = "",
) -> pb.HttpResponse:
    """An endpoint's answer: a body (or ``json=``, sent as application/json), status and headers."""
    if json is not None:
        body, media_type = jsonlib.dumps(json), media_type or "application/json"
    fields = _headers(headers)
    if media_type and not any(h.name.lower() == "content-type" for h in fields):
        fields.append(pb.Header(name="content-type", value=media_type))
    raw = body.encode() if isinstance(body, str) else body
    return pb.HttpResponse(status=status, headers=fields, body=raw)
