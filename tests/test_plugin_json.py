"""JSON a plugin writes (log lines, its config schema) cannot crash the host, however deep it nests."""

from __future__ import annotations

import pytest
import structlog

from solstice.host import PluginConfigError, PluginSpec
from solstice.host.instance import check_config
from solstice.host.output import PluginOutput

DEEP = "[" * 5000 + "]" * 5000


def test_a_deep_json_log_line_is_logged_as_text() -> None:
    output = PluginOutput("p")
    with structlog.testing.capture_logs() as records:
        output.feed("stderr", ("{" + '"a": ' + DEEP + "}\n").encode())
        output.feed("stderr", b"still reading\n")
        output.flush()
    assert [r["event"][:6] for r in records] == ['{"a": ', "still "]


def test_a_deep_config_schema_is_a_config_error() -> None:
    spec = PluginSpec(slug="p", command="file:///x")
    with pytest.raises(PluginConfigError, match="unusable config schema"):
        check_config(spec, '{"properties": ' + DEEP + "}", {})
