"""Facts several modules share, defined once: the hook table, the snapshot's shape, the shared texts."""

from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

from solstice.control.specs import plugin_entry, spec_for
from solstice.edge.plugins_yaml import snapshot_from_file
from solstice.edge.reconcile import specs_from_snapshot
from solstice.hooks import (
    AGENT_HOOK,
    ENDPOINT_HOOK,
    HOOK_ENUMS,
    HOOK_TYPES,
    OBJECT_HOOK,
    PLUGIN_HOOKS,
    TASK_HOOK,
    hook_name,
    hook_types_of,
    known_failure_policy,
)
from solstice.host.errors import exited_text
from solstice.protocol import pb
from solstice.safejson import JSONValueError, body_refusal, body_too_large
from solstice.snapshot import AppEntry, ChainEntry, LLMEntry, PluginEntry, Snapshot
from solstice.store.models import LLMPluginRow, PluginRow

PLUGINS_YAML = """
plugins:
  - slug: guard
    command: file:///bin/true
    hook_types: [pre_auth, on_response]
    config: {words: [a]}
llms:
  - slug: gpt
    vendor: mock
    plugins:
      - plugin: guard
        config_override: {words: [b]}
        failure_policy: fail_open
apps:
  - name: app
    llms: [gpt]
"""


def _keys(cls: type) -> set[str]:
    return set(get_type_hints(cls))


def test_every_protocol_hook_has_a_name_that_round_trips() -> None:
    named = {value for value in pb.Hook.values() if value != pb.HOOK_UNSPECIFIED}
    assert set(HOOK_ENUMS.values()) == named
    assert (
        tuple(HOOK_ENUMS) == PLUGIN_HOOKS == (*HOOK_TYPES, ENDPOINT_HOOK, TASK_HOOK, OBJECT_HOOK, AGENT_HOOK)
    )
    for hook, value in HOOK_ENUMS.items():
        assert hook_name(value) == hook


def test_hook_types_fall_back_to_the_one_hook_of_an_old_row() -> None:
    assert hook_types_of(["auth", "post_auth"], "auth") == ["auth", "post_auth"]
    assert hook_types_of([], "auth") == ["auth"]
    assert hook_types_of(None, None) == []


def test_a_stored_policy_that_is_not_one_falls_back_to_the_default() -> None:
    assert known_failure_policy("fail_open") == "fail_open"
    assert known_failure_policy("fail_closed") == "fail_closed"
    assert known_failure_policy("sometimes") is None
    assert known_failure_policy(None) is None


def _row() -> PluginRow:
    return PluginRow(
        id=1, slug="guard", name="Guard", command="file:///bin/true", config={"words": ["a"]},
        hook_type="pre_auth", hook_types=["pre_auth", "on_response"], plugin_type="gateway",
        is_active=True, is_global=False, timeout_ms=1000, failure_policy=None, env=[], checksum=None,
        namespace="", digest=None, revision=3,
    )  # fmt: skip


def test_the_control_plane_entry_has_every_key_of_the_type() -> None:
    entry = plugin_entry(_row())
    required = PluginEntry.__required_keys__
    assert required <= set(entry) <= _keys(PluginEntry)
    assert {"name", "revision"} <= set(entry)


def test_a_file_snapshot_has_the_keys_of_the_types(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(PLUGINS_YAML)
    snapshot = snapshot_from_file(path, {})
    assert set(snapshot) == _keys(Snapshot)
    for plugin in snapshot["plugins"]:
        assert PluginEntry.__required_keys__ == set(plugin)
    for llm in snapshot["llms"]:
        assert set(llm) == _keys(LLMEntry)
        for entry in llm["chain"]:
            assert set(entry) == _keys(ChainEntry)
    for app in snapshot["apps"]:
        assert set(app) == _keys(AppEntry)


def test_control_plane_and_edge_build_the_same_spec(tmp_path: Path) -> None:
    row = _row()
    chain = LLMPluginRow(llm_id=1, plugin_id=1, position=0, config_override={"words": ["b"]})
    path = tmp_path / "plugins.yaml"
    path.write_text(PLUGINS_YAML)
    edge = specs_from_snapshot(snapshot_from_file(path, {}))["guard"]
    control = spec_for(row, [chain])
    assert control == edge
    assert len(control.overrides) == 1


def test_the_shared_texts() -> None:
    assert body_too_large(10, 12) == "request body is 12 bytes; the limit is 10"
    assert body_too_large(10) == "request body is over the 10 byte limit"
    assert body_refusal(JSONValueError("is not valid JSON: x")) == "request body is not valid JSON: x"
    assert body_refusal(JSONValueError("nan is bad", "a.b")) == "request body a.b: nan is bad"
    assert exited_text("/p", 2, "panic: x", "before the handshake") == (
        "plugin /p exited with code 2 before the handshake; last output: panic: x"
    )
    assert (
        exited_text("process 42", 2, "panic: x")
        == "plugin process 42 exited with code 2; last output: panic: x"
    )
