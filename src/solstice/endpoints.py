"""Custom endpoint routes: the path grammar plugins declare, checked and matched the same way by the
plugin SDK, the host and the gateway.

A route's path is relative to /plugins/{slug}: "/" or "/"-separated segments, each a literal, a
capture `{name}` (one non-empty segment) or, as the last segment only, `{name...}` (the rest of the
path, possibly empty). Two routes of one plugin may not match the same request: a request has one
handler, whatever order the routes were declared in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_ROUTES = 64
MAX_PATH_CHARS = 512
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# RFC 3986 pchar without "%": requests are matched decoded, so a literal is written decoded too.
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
_GRAMMAR = "segments of letters, digits and -._~!$&'()*+,;=:@, or {name}, or a last {name...}"


class RouteError(ValueError):
    """A declared route breaks the grammar or overlaps another; the message says which and why."""


@dataclass(frozen=True)
class Segment:
    """A literal, a one-segment capture, or the capture of the rest."""

    literal: str = ""
    capture: str = ""
    rest: bool = False


@dataclass(frozen=True)
class Route:
    """One declared route: its path, parsed, the methods it answers (upper case) and how."""

    path: str
    segments: tuple[Segment, ...]
    methods: frozenset[str]
    require_auth: bool = False
    stream: bool = False
    description: str = ""

    def match(self, path: str) -> dict[str, str] | None:
        """The captures when `path` (under the plugin's prefix, starting with "/") matches; else None."""
        parts = _parts(path)
        captures: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.rest:
                captures[segment.capture] = "/".join(parts[index:])
                return captures
            if index >= len(parts):
                return None
            part = parts[index]
            if segment.capture:
                if not part:
                    return None
                captures[segment.capture] = part
            elif part != segment.literal:
                return None
        return captures if len(parts) == len(self.segments) else None

    def overlaps(self, other: Route) -> bool:
        """Whether some request could match both: a shared method and a path both patterns accept."""
        if not self.methods & other.methods:
            return False
        for mine, theirs in zip(self.segments, other.segments, strict=False):
            if mine.rest or theirs.rest:
                return True
            if mine.literal and theirs.literal and mine.literal != theirs.literal:
                return False
        shorter, longer = sorted((self.segments, other.segments), key=len)
        # Equal lengths: every pair can match. Else only a rest capture, which may be empty, can.
        return len(shorter) == len(longer) or longer[len(shorter)].rest


def _parts(path: str) -> list[str]:
    stripped = path.removeprefix("/")
    return stripped.split("/") if stripped else []


def parse_route(path: str, methods: Iterable[str]) -> Route:
    """The route for a declared path and methods; RouteError names what is wrong and the rule."""
    if not path.startswith("/") or len(path) > MAX_PATH_CHARS:
        raise RouteError(
            f"route {path!r} must start with '/' and be at most {MAX_PATH_CHARS} characters, "
            "e.g. '/webhooks/{name}'"
        )
    wanted = [method.upper() for method in methods]
    unknown = [method for method in wanted if method not in METHODS]
    if not wanted or unknown:
        raise RouteError(
            f"route {path!r} has methods {sorted(set(wanted)) or 'none'}; "
            f"use one or more of {', '.join(METHODS)}"
        )
    segments: list[Segment] = []
    names: set[str] = set()
    raw = _parts(path)
    for index, part in enumerate(raw):
        segment = _segment(path, part, last=index == len(raw) - 1)
        if segment.capture in names:
            raise RouteError(
                f"route {path!r} captures {{{segment.capture}}} twice; give each capture its own name"
            )
        if segment.capture:
            names.add(segment.capture)
        segments.append(segment)
    return Route(path=path, segments=tuple(segments), methods=frozenset(wanted))


def _segment(path: str, part: str, last: bool) -> Segment:
    if part.startswith("{") and part.endswith("}"):
        name = part[1:-1]
        rest = name.endswith("...")
        name = name.removesuffix("...")
        if _NAME.fullmatch(name) and (last or not rest):
            return Segment(capture=name, rest=rest)
    elif part not in (".", "..") and _LITERAL.fullmatch(part):
        return Segment(literal=part)
    raise RouteError(f"route {path!r} has a bad segment {part!r}; a path is {_GRAMMAR}")


def check_routes(declared: Sequence[tuple[str, Iterable[str]]]) -> list[Route]:
    """Parse a plugin's routes (path, methods); RouteError for a bad one or two that overlap."""
    if len(declared) > MAX_ROUTES:
        raise RouteError(f"{len(declared)} routes are declared; a plugin may serve at most {MAX_ROUTES}")
    routes = [parse_route(path, methods) for path, methods in declared]
    for index, route in enumerate(routes):
        for earlier in routes[:index]:
            if route.overlaps(earlier):
                shared = ", ".join(sorted(route.methods & earlier.methods))
                raise RouteError(
                    f"routes {earlier.path!r} and {route.path!r} both match some {shared} requests; "
                    "make their literal segments differ or serve them as one route"
                )
    return routes


def find_route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route that answers `method` on `path`, with its captures; None when no route does."""
    for route in routes:
        if method in route.methods and (captures := route.match(path)) is not None:
            return route, captures
    return None
