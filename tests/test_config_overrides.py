"""One plugin process, several configurations: per-LLM overrides chosen per call by config_id."""

from __future__ import annotations

import signal

import pytest

from solstice.host import PluginConfigError, PluginHost, PluginSpec, PluginState
from solstice.protocol import pb
from tests.conftest import EXAMPLES, fast_settings

IP_FILTER = EXAMPLES / "ip-filter" / "plugin.py"
DENIED = pb.HttpRequest(remote_addr="203.0.113.5:1000")


def _ctx(config_id: str = "") -> pb.RequestContext:
    return pb.RequestContext(request_id="r", config_id=config_id)


async def test_python_plugin_applies_the_named_configuration(host: PluginHost) -> None:
    spec = PluginSpec(
        slug="ipf",
        command=f"file://{IP_FILTER}",
        config={"deny": []},
        overrides={"strict": {"deny": ["203.0.113.0/24"]}},
    )
    await host.load(spec)
    client = host.client("ipf")
    assert (await client.pre_auth(_ctx(), DENIED)).WhichOneof("action") == "proceed"
    assert (await client.pre_auth(_ctx("strict"), DENIED)).block.status == 403


async def test_go_plugin_applies_the_named_configuration(host: PluginHost, go_plugin) -> None:
    spec = PluginSpec(
        slug="guard", command=f"file://{go_plugin}", config={}, overrides={"small": {"max_body_bytes": 4}}
    )
    await host.load(spec)
    client = host.client("guard")
    body = pb.HttpRequest(body=b"0123456789")
    assert (await client.pre_auth(_ctx(), body)).WhichOneof("action") == "proceed"
    assert (await client.pre_auth(_ctx("small"), body)).block.status == 413


async def test_a_rejected_override_fails_the_reload_and_keeps_the_old(host: PluginHost) -> None:
    spec = PluginSpec(slug="ipf", command=f"file://{IP_FILTER}", config={"deny": []})
    before = await host.load(spec)
    bad = PluginSpec(slug="ipf", command=spec.command, config={"deny": []}, overrides={"x": {"deny": "nope"}})
    with pytest.raises(PluginConfigError, match="config override x of plugin ipf does not match"):
        await host.reload("ipf", bad)
    assert host.status("ipf").pid == before.pid and host.status("ipf").state == PluginState.HEALTHY


async def test_restarted_remote_plugin_gets_overrides_on_use(standalone) -> None:
    server = standalone(IP_FILTER)
    spec = PluginSpec(
        slug="ipf",
        command=server.command,
        config={"deny": []},
        overrides={"strict": {"deny": ["203.0.113.0/24"]}},
    )
    async with PluginHost(fast_settings(plugin_health_interval=3600)) as host:
        await host.load(spec)
        server.stop(signal.SIGKILL)
        standalone(IP_FILTER, port=server.port)
        client = host.client("ipf")
        assert (await client.pre_auth(_ctx("strict"), DENIED)).block.status == 403
        assert (await client.pre_auth(_ctx(), DENIED)).WhichOneof("action") == "proceed"
