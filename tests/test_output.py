"""Plugin output lines become structured records: hclog JSON, level prefixes, panics."""

from __future__ import annotations

import logging

import structlog

from solstice.host.output import MAX_LINE_BYTES, PluginOutput


def _records(*chunks: tuple[str, bytes]) -> list[dict[str, object]]:
    output = PluginOutput("p")
    with structlog.testing.capture_logs() as records:
        for stream, data in chunks:
            output.feed(stream, data)
        output.flush()
    return records


def test_hclog_json_line_keeps_level_message_and_fields() -> None:
    line = b'{"@level":"warn","@message":"slow upstream","@module":"guard","latency_ms":900,"plugin":"x"}\n'
    (record,) = _records(("stderr", line))
    assert record["event"] == "slow upstream"
    assert record["log_level"] == "warning"
    assert record["module"] == "guard"
    assert record["latency_ms"] == 900
    assert record["plugin"] == "p", "a plugin cannot impersonate another through its own fields"
    assert record["stream"] == "stderr"


def test_level_prefixes_and_plain_lines() -> None:
    records = _records(("stderr", b"[ERROR] sdk: boom\n[DEBUG] detail\nplain words\n"))
    assert [(r["event"], r["log_level"]) for r in records] == [
        ("sdk: boom", "error"),
        ("detail", "debug"),
        ("plain words", "info"),
    ]


def test_lines_split_across_chunks_and_unterminated_tail() -> None:
    records = _records(("stdout", b"hel"), ("stdout", b"lo\nwor"), ("stdout", b"ld"))
    assert [r["event"] for r in records] == ["hello", "world"]


def test_panic_makes_the_rest_of_the_stream_errors_until_exit() -> None:
    output = PluginOutput("p")
    with structlog.testing.capture_logs() as records:
        output.feed("stderr", b"panic: runtime error\ngoroutine 1 [running]:\n")
        output.flush()
        output.feed("stderr", b"fresh start\n")
    assert [r["log_level"] for r in records] == ["error", "error", "info"]


def test_overlong_line_is_split_and_tail_is_kept() -> None:
    output = PluginOutput("p")
    with structlog.testing.capture_logs() as records:
        output.feed("stderr", b"y" * (MAX_LINE_BYTES + 10))
        output.flush()
    assert [len(r["event"]) for r in records] == [MAX_LINE_BYTES, 10]
    assert output.tail()[-1] == "y" * 10
    assert logging.getLevelName(logging.INFO).lower() == records[0]["log_level"]
