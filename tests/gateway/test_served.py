"""What needs a real HTTP connection to `solstice serve`: a client hanging up in the middle of a stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.gateway.conftest import Route, plugin
from tests.server import Server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("served")).wait_ready()
    yield server
    server.stop()


def test_a_stream_the_client_abandons_is_recorded_as_truncated(served: Server, record_file: Path) -> None:
    collector = plugin(served, "data_collection", config={"record_file": str(record_file)})
    route = Route(served, chain=[{"plugin": collector}], options={"chunk_delay_ms": 200})
    with httpx.stream(
        "POST", f"{served.url}/llm/{route.slug}/v1/chat/completions",
        json={"stream": True, "messages": [{"role": "user", "content": "many words to stream slowly here"}]},
        headers={"Authorization": f"Bearer {route.key}"}, timeout=60,
    ) as streamed:  # fmt: skip
        next(streamed.iter_bytes())  # read one chunk, then hang up
    wait_until(
        lambda: "truncated" in (record_file.read_text() if record_file.exists() else ""),
        15,
        served.log,
        what="the abandoned stream to be recorded as truncated",
    )
