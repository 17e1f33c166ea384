"""Reads a JSON request body whatever its Content-Type says.

The reference page's curl examples send JSON with `-d` and no Content-Type header, so
curl labels it application/x-www-form-urlencoded; the body is JSON all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel

from solstice import safejson
from solstice.api.problems import Problem

MAX_BODY_BYTES = 1 << 20


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400/413/422 problem.

    Numbers must be finite and nesting at most safejson.MAX_DEPTH levels: either would be stored
    and then break every reader of the value.
    """
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, safejson.body_too_large(MAX_BODY_BYTES, len(raw)))
    if not raw.strip():
        raise Problem(422, "request body is empty; send a JSON object")
    try:
        data = safejson.parse(raw)
    except safejson.JSONValueError as exc:
        raise Problem(400, safejson.body_refusal(exc)) from None
    if not isinstance(data, dict):
        raise Problem(422, f"request body must be a JSON object, not {type(data).__name__}")
    try:
        safejson.check(data)
    except safejson.JSONValueError as exc:
        # Parsed as an object: the text addresses the field itself (`config.a: …`).
        raise Problem(422, f"{exc.path or 'request body'}: {exc.reason}") from None
    where = _nul_in(data, "")
    if where is not None:
        raise Problem(422, f"{where or 'a key'} contains a NUL character, which cannot be stored; remove it")
    return data


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) holding NUL, which databases cannot store."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path or "a key"
            found = _nul_in(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that parses its body with json_object()."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(schema, definitions, ())}},
        }
    }


def _inlined(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """`node` with each `#/$defs/X` replaced by X itself: the body's schema sits inside the OpenAPI
    document, where such a reference would not resolve."""
    if isinstance(node, list):
        return [_inlined(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        name = reference.removeprefix("#/$defs/")
        if name in seen:
            raise ValueError(f"{name} refers to itself; a recursive body model cannot be inlined")
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inlined(definitions[name], definitions, (*seen, name)), **rest}
    return {key: _inlined(value, definitions, seen) for key, value in node.items()}
