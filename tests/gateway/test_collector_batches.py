"""data_collection calls are bounded by bytes as well as records, so large records cannot sink a batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from solstice.gateway.collector import Collector
from solstice.gateway.record_batches import TRUNCATED_KEY, fit
from solstice.gateway.routes import Step
from solstice.host import PluginHost, PluginSpec
from solstice.protocol import pb
from solstice.protocol.limits import BATCH_BYTES, RECORD_BODY_BYTES
from solstice.protocol.transport import MAX_MESSAGE_BYTES
from solstice.settings import Settings
from tests.conftest import ROOT, settings_error, wait_for

RECORDER = ROOT / "tests" / "plugins" / "batch_recorder.py"
MIB = 1 << 20


class Recorder:
    """A batch_recorder plugin process behind a running Collector."""

    def __init__(self, host: PluginHost, settings: Settings, record_file: Path) -> None:
        self.slug = f"rec-{uuid.uuid4().hex[:8]}"
        self.step = Step(slug=self.slug, config_id="", timeout_ms=60_000, failure_policy="fail_open")
        self.file = record_file
        self.collector = Collector(host, settings)

    def submit(self, request_id: str, **fields: Any) -> None:
        ctx = pb.RequestContext(request_id=request_id, metadata=fields.pop("metadata", {}))
        self.collector.submit((self.step,), pb.ProxyRecord(context=ctx, **fields))

    def calls(self) -> list[dict[str, Any]]:
        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines()]

    def records(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for call in self.calls() for r in call["records"]}

    def failures(self) -> float:
        labels = {"plugin": self.slug}
        return REGISTRY.get_sample_value("solstice_data_collection_failures_total", labels) or 0.0


@pytest.fixture
async def recorder(host: PluginHost, settings: Settings, tmp_path: Path) -> AsyncIterator[Recorder]:
    rec = Recorder(host, settings, tmp_path / "records.jsonl")
    await host.load(
        PluginSpec(slug=rec.slug, command=f"file://{RECORDER}", config={"record_file": str(rec.file)})
    )
    rec.collector.start()
    yield rec
    await rec.collector.aclose()


async def test_records_larger_together_than_a_message_go_in_separate_calls(recorder: Recorder) -> None:
    # 36 MiB each: two of them are more than one gRPC message may carry.
    big = {"request_body": b"q" * (8 * MIB), "response_body": b"r" * (28 * MIB)}
    recorder.submit("small-1", request_body=b"hi")
    recorder.submit("big-1", **big)
    recorder.submit("big-2", **big)
    recorder.submit("small-2", response_body=b"ok")
    await wait_for(lambda: len(recorder.records()) == 4, timeout=60)

    calls = recorder.calls()
    assert [r["id"] for call in calls for r in call["records"]] == ["small-1", "big-1", "big-2", "small-2"]
    assert len(calls) == 2
    assert all(call["bytes"] <= BATCH_BYTES < MAX_MESSAGE_BYTES for call in calls)
    assert recorder.records()["big-2"] == {
        "id": "big-2", "request": 8 * MIB, "response": 28 * MIB, "metadata": {}
    }  # fmt: skip
    assert recorder.failures() == 0


async def test_a_record_too_large_for_any_call_arrives_cut_and_marked(recorder: Recorder) -> None:
    recorder.submit("before")
    recorder.submit(
        "huge",
        request_body=b"q" * (2 * MIB),
        response_body=b"r" * MAX_MESSAGE_BYTES,
        metadata={"team": "blue"},
    )
    recorder.submit("after")
    await wait_for(lambda: len(recorder.records()) == 3, timeout=60)

    huge = recorder.records()["huge"]
    assert huge["metadata"] == {"team": "blue", TRUNCATED_KEY: f"response_body:{MAX_MESSAGE_BYTES}"}
    assert huge["request"] == 2 * MIB
    # Cut only as far as needed: the record fills most of a call.
    assert BATCH_BYTES - 2 * MIB - 4096 < huge["response"] < BATCH_BYTES - 2 * MIB
    assert all(call["bytes"] <= BATCH_BYTES for call in recorder.calls())
    assert recorder.failures() == 0


async def test_a_record_too_large_without_bodies_is_counted_and_the_rest_delivered(
    recorder: Recorder,
) -> None:
    recorder.submit("sane", request_body=b"hi")
    recorder.submit("hopeless", model="m" * MAX_MESSAGE_BYTES)  # an upstream's absurd "model" field
    recorder.submit("also-sane")
    await wait_for(lambda: len(recorder.records()) == 2, timeout=60)
    assert sorted(recorder.records()) == ["also-sane", "sane"]
    assert recorder.failures() == 1


def test_fit_empties_metadata_when_cutting_the_bodies_is_not_enough() -> None:
    ctx = pb.RequestContext(request_id="r", metadata={f"k{i}": "v" * 1000 for i in range(100)})
    record = pb.ProxyRecord(context=ctx, request_body=b"q" * 50_000, response_body=b"r" * 10)
    fitted = fit(record, 20_000)
    assert fitted is not None and fitted.ByteSize() <= 20_000
    assert dict(fitted.context.metadata) == {
        TRUNCATED_KEY: "response_body:10,request_body:50000,metadata:100"
    }
    assert (fitted.request_body, fitted.response_body, fitted.context.request_id) == (b"", b"", "r")
    assert len(record.context.metadata) == 100  # the queued record itself is untouched


WHY = f"one proxy record holds both bodies and must fit a {MAX_MESSAGE_BYTES}-byte grpc message"


def test_body_limits_that_one_record_could_not_hold_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    largest = RECORD_BODY_BYTES - 10 * MIB
    Settings(gateway_max_body_bytes=10 * MIB, gateway_max_response_bytes=largest)  # just fits
    message = settings_error(monkeypatch, SOLSTICE_GATEWAY_MAX_RESPONSE_BYTES=largest + 1)
    assert message == (
        f"SOLSTICE_GATEWAY_MAX_RESPONSE_BYTES={largest + 1} is invalid: with the request body limit at "
        f"{10 * MIB} bytes, the largest allowed value is {largest}: {WHY}; correct or unset it"
    )


def test_the_limit_that_was_set_is_the_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # The response limit is left at its default (32 MiB): the request body limit is the one to lower.
    message = settings_error(monkeypatch, SOLSTICE_GATEWAY_MAX_BODY_BYTES=50_000_000)
    assert message == (
        "SOLSTICE_GATEWAY_MAX_BODY_BYTES=50000000 is invalid: with the response body limit at "
        f"{32 * MIB} bytes, the largest allowed value is {RECORD_BODY_BYTES - 32 * MIB}: {WHY}; correct or unset it"
    )


def test_two_limits_each_too_large_alone_ask_to_lower_both(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(
        monkeypatch,
        SOLSTICE_GATEWAY_MAX_BODY_BYTES=60_000_000,
        SOLSTICE_GATEWAY_MAX_RESPONSE_BYTES=60_000_000,
    )
    assert message == (
        "SOLSTICE_GATEWAY_MAX_BODY_BYTES=60000000 is invalid: the request and response body limits may add "
        f"up to {RECORD_BODY_BYTES} bytes, so lower both: {WHY}; correct or unset it"
    )


def test_serve_refuses_a_request_body_limit_past_the_message_cap(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SOLSTICE_DATA_DIR": str(tmp_path),
        "SOLSTICE_GATEWAY_MAX_BODY_BYTES": str(MAX_MESSAGE_BYTES),
    }
    done = subprocess.run(
        [sys.executable, "-m", "solstice", "serve"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"solstice: SOLSTICE_GATEWAY_MAX_BODY_BYTES={MAX_MESSAGE_BYTES} is invalid: with the response body "
        f"limit at {32 * MIB} bytes, the largest allowed value is {RECORD_BODY_BYTES - 32 * MIB}: {WHY}; "
        "correct or unset it"
    ]
