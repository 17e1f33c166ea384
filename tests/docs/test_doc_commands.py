"""Every command in the quick start and the deployment-method pages runs, and prints what the page says.

Each page runs as one bash script, in a fresh directory that looks like a checkout of Solstice
(symlinks to the repository's examples, Makefile, sources and virtualenv), so the pages can say
"from a checkout" and mean it. A page is Markdown; what the harness reads from it:

- every ```sh block, in order, in one shell (`set -euo pipefail`, so a failing command fails the
  test; `curl` fails on HTTP errors, as if `--fail-with-body` were given, unless it is asked
  for the status code with `-w`);
- a ```text or ```json block right after a ```sh block is that block's output: each of its lines
  must appear, in order, in what the block printed, compared without whitespace (so pretty JSON
  matches compact JSON). Lines of only brackets or `...` are layout and are not compared;
- `<!-- expect-failure -->` right before a ```sh block: the block's last command must fail (a
  refusal shown on purpose); its output is still checked.

The pages use the fixed ports a reader uses (3000 for Solstice, 5000 for a registry), so the test
fails loudly when something else holds them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [
    p for p in ["quickstart.md", "deploy-file.md", "deploy-grpc.md", "deploy-oci.md"] if (DOCS / p).exists()
]
# What a checkout holds that the pages use.
CHECKOUT = ["examples", "Makefile", "pyproject.toml", "src", "README.md", ".venv"]
PORTS = (3000, 5000)
MARK = "@@solstice-docs-block@@"
PAGE_TIMEOUT_S = 180

PREAMBLE = """\
set -euo pipefail
# curl fails on HTTP errors, unless the page reads the status itself with -w.
curl() {
  case " $* " in *" -w "*|*" --write-out "*) command curl --silent --show-error "$@" ;;
  *) command curl --silent --show-error --fail-with-body "$@" ;; esac
}
# Whatever a page leaves running is stopped when the page ends, by PID.
trap 'for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null || true; done; wait' EXIT
"""


@dataclass
class Block:
    """One ```sh block of a page, with the output the page shows for it."""

    line: int
    code: str
    expect_failure: bool = False
    output: str | None = None


_FENCE = re.compile(r"^```(\w*)\s*$")


def blocks_of(page: Path) -> list[Block]:
    """The shell blocks of a Markdown page, in order, each with its shown output."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index, expect_failure, previous_was_sh = 0, False, False
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if lines[index].strip() == "<!-- expect-failure -->":
            expect_failure = True
        if fence is None:
            if lines[index].strip():
                previous_was_sh = False
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(lines[start:end])
        if language == "sh":
            found.append(Block(start, body, expect_failure))
            expect_failure, previous_was_sh = False, True
        elif language in ("text", "json") and previous_was_sh and found[-1].output is None:
            found[-1].output = body
            previous_was_sh = False
        index = end + 1
    return found


def script_of(blocks: list[Block]) -> str:
    """One bash script running the blocks in order, a marker line before each block's output."""
    parts = [PREAMBLE]
    for number, block in enumerate(blocks):
        # A newline first: curl's answers do not end with one.
        parts.append(f"printf '\\n{MARK} {number}\\n'")
        if block.expect_failure:
            parts.append(f"if (\n{block.code}\n) 2>&1; then printf '\\n{MARK} unexpected success\\n'; fi")
        else:
            parts.append(f"{{\n{block.code}\n}} 2>&1")
    parts.append(f"printf '\\n{MARK} end\\n'")
    return "\n".join(parts) + "\n"


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_output(block: Block, printed: str, page: str) -> None:
    """Each meaningful line the page shows appears, in order, in what the block printed."""
    assert block.output is not None
    haystack, position = _squeeze(printed), 0
    for shown in block.output.splitlines():
        needle = _squeeze(shown).rstrip(",")
        if not needle or re.fullmatch(r"[\[\]{}(),.]*|\.\.\.|…", needle):
            continue
        found = haystack.find(needle, position)
        assert found >= 0, (
            f"{page}:{block.line}: the page shows {shown.strip()!r}, which the command did not print "
            f"(after what matched so far):\n{printed}"
        )
        position = found + len(needle)


def _stop_session(shell: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL, to every process still in the page's session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, sig)
        try:
            shell.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def _busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(PAGE_TIMEOUT_S + 60)
@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_page_runs(page: str, tmp_path: Path) -> None:
    blocks = blocks_of(DOCS / page)
    assert blocks, f"{page} has no ```sh blocks"
    busy = [port for port in PORTS if _busy(port)]
    if busy:
        pytest.fail(f"ports {busy} are in use; the documentation pages need them free", pytrace=False)
    installed = ROOT / ".venv" / ".installed"
    if not installed.exists() or installed.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        # The quick start's `make install` would otherwise install from this temporary checkout.
        pytest.fail("the virtualenv is older than pyproject.toml; run `make install` first", pytrace=False)
    checkout = tmp_path / "solstice"
    checkout.mkdir()
    for name in CHECKOUT:
        (checkout / name).symlink_to(ROOT / name)
    env = {
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(ROOT / ".venv"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    (tmp_path / "home").mkdir()
    # Its own session, so everything the page started is stopped with it, even on a timeout.
    shell = subprocess.Popen(
        ["bash", "-c", script_of(blocks)], cwd=checkout, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = shell.communicate(timeout=PAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stdout, stderr = "", f"the page did not finish within {PAGE_TIMEOUT_S} s"
    finally:
        _stop_session(shell)
    done = subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)
    sections = re.split(rf"^{re.escape(MARK)} ", done.stdout, flags=re.MULTILINE)[1:]
    printed = {}
    for section in sections:
        label, _, text = section.partition("\n")
        printed[label] = text
    ran = [label for label in printed if label.isdigit()]
    last = blocks[int(ran[-1])] if ran else blocks[0]
    assert "unexpected success" not in done.stdout, f"{page}: a block marked expect-failure succeeded"
    assert done.returncode == 0 and "end" in printed, (
        f"{page}:{last.line}: this block failed (exit {done.returncode}):\n{last.code}\n"
        f"--- it printed:\n{printed.get(ran[-1], '') if ran else ''}\n--- stderr:\n{done.stderr}"
    )
    for number, block in enumerate(blocks):
        if block.output is not None:
            check_output(block, printed[str(number)], page)
