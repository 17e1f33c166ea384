"""A crash's last_error keeps the line that explains it, however much output followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from solstice.host import PluginCallError, PluginHost, PluginSpec, PluginState
from solstice.host.output import PluginOutput
from solstice.protocol import pb
from tests.conftest import ROOT, fast_settings, go_build, wait_for

GUARD = ROOT / "examples" / "plugins" / "go-request-guard" / "main.go"
PANIC = """	if req.GetRequest().GetPath() == "/panic" {
		debug.SetTraceback("all") // every goroutine's stack: many lines after the panic line
		panic("guard exploded on " + req.GetRequest().GetPath())
	}
"""


@pytest.fixture(scope="module")
def panicking_guard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example plugin, changed to panic inside its pre_auth handler on path /panic."""
    source = GUARD.read_text()
    anchor = "\tbody := req.GetRequest().GetBody()\n"
    assert source.count(anchor) == 1 and source.count('\t"strings"\n') == 1
    source = source.replace(anchor, PANIC + anchor).replace(
        '\t"strings"\n', '\t"runtime/debug"\n\t"strings"\n'
    )
    work = tmp_path_factory.mktemp("panicking-guard")
    (work / "main.go").write_text(source)
    return go_build("main.go", work / "panicking-guard", cwd=work)


async def test_a_go_panic_in_a_handler_keeps_its_panic_line(panicking_guard: Path) -> None:
    # A long back-off keeps the plugin restarting, so the crash's last_error can be read.
    settings = fast_settings(plugin_restart_backoff=60.0, plugin_restart_backoff_max=60.0)
    async with PluginHost(settings) as host:
        await host.load(PluginSpec(slug="guard", command=f"file://{panicking_guard}"))
        with pytest.raises(PluginCallError):
            await host.client("guard").pre_auth(pb.RequestContext(), pb.HttpRequest(path="/panic"))
        await wait_for(lambda: host.status("guard").state == PluginState.RESTARTING, timeout=30)
        error = host.status("guard").last_error or ""
    assert "panic: guard exploded on /panic" in error, error
    # Stack frames followed the panic line; the last of them are shown after it.
    assert " | … | " in error and error.index("panic:") < error.index("…"), error
    assert "goroutine" in error or ".go:" in error, error


def _tail(*lines: str, count: int = 5) -> str:
    output = PluginOutput("p")
    output.feed("stderr", "".join(f"{line}\n" for line in lines).encode())
    output.flush()
    return output.last_lines(count)


def test_a_python_exception_line_is_kept_before_later_output() -> None:
    text = _tail(
        "starting",
        "Traceback (most recent call last):",
        '  File "/plugins/guard", line 9, in <module>',
        "    main()",
        "ValueError: deny must be a list of CIDRs",
        *(f"shutting down step {n}" for n in range(30)),
    )
    assert text.startswith("ValueError: deny must be a list of CIDRs | … | shutting down step 25"), text
    assert text.endswith("shutting down step 29"), text


def test_an_explanation_among_the_last_lines_is_not_repeated() -> None:
    text = _tail("a", "b", "panic: boom", "goroutine 1 [running]:", "main.main()")
    assert text == "a | b | panic: boom | goroutine 1 [running]: | main.main()"
    assert _tail() == "(no output)"
