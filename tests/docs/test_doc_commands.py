"""Every command shown in a page of docs/ runs, and prints what the page says.

Every page (found by glob, so a new page is covered at once) runs as one bash script, in a fresh
directory that looks like a checkout of Solstice (symlinks to the repository's examples, Makefile,
sources and virtualenv), so the pages can say "from a checkout" and mean it. A page is Markdown;
what the harness reads from it:

- every ```sh block, in order, in one shell (`set -euo pipefail`, so a failing command fails the
  test; `curl` fails on HTTP errors, as if `--fail-with-body` were given, unless it is asked
  for the status code with `-w`);
- a ```text or ```json block right after a ```sh block is that block's output: each of its lines
  must appear, in order, in what the block printed, compared without whitespace (so pretty JSON
  matches compact JSON). Lines of only brackets or `...` are layout and are not compared, and `…`
  (or `...`) inside a line stands for any text;
- `<!-- expect-failure -->` right before a ```sh block: the block's last command must fail (a
  refusal shown on purpose); its output is still checked;
- `<!-- docs-test: WHY` ... `-->`: ```sh blocks inside this comment run in their place but are
  not shown; they set up what a reference page takes for granted (a running control plane, a
  registry) or wait for what a command started, and WHY says what;
- `<!-- save-as: FILE -->` right before a block: the block's text is written to FILE (relative
  to the shell's directory at that point) before the next ```sh block runs;
- `<!-- not run: WHY -->` right before a ```console block: a command shown but not run (it needs
  a Docker daemon or a Kubernetes cluster). A ```console block without it fails the test.

Every fenced block must say its language, and a shell-like language other than `sh` and `console`
(`bash`, `shell`, a bare fence holding commands) fails the test, so no command escapes the run.

The pages use the fixed ports a reader uses (3000 for Solstice, 3001 for an edge next to it, 5000
for a registry, 50051 for a grpc:// plugin), so the test fails loudly when something else holds
them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# What a checkout holds that the pages use.
CHECKOUT = ["examples", "Makefile", "pyproject.toml", "src", "README.md", ".venv", "go", "deploy"]
PORTS = (3000, 3001, 5000, 50051)
MARK = "@@solstice-docs-block@@"
PAGE_TIMEOUT_S = 180

# Fence languages: run, shown but not run (with a reason), and content that is not a command.
RUN = "sh"
NOT_RUN = "console"
OUTPUT = ("text", "json")
CONTENT = ("text", "json", "yaml", "python", "go", "proto", "toml", "dockerfile", "ini")

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
    """One ```sh block of a page (or a file it saves), with the output the page shows for it."""

    line: int
    code: str
    expect_failure: bool = False
    output: str | None = None
    hidden: bool = False
    save_as: str | None = None


@dataclass
class Page:
    """What the harness runs of a page, and what it could not classify."""

    blocks: list[Block] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_run: int = 0


_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- (expect-failure|save-as: (?P<file>\S+)|not run: (?P<why>.+\S)) -->$")
_SETUP = re.compile(r"^<!-- docs-test: \S")


def parse(page: Path) -> Page:
    """The page's blocks to run, in order, and every fence or marker the harness cannot classify."""
    lines = page.read_text().splitlines()
    parsed, name = Page(), page.name
    marker: tuple[str, int] | None = None  # the marker waiting for the next fence, and its line
    index, in_setup, previous_was_sh = 0, False, False
    while index < len(lines):
        text = lines[index].strip()
        number = index + 1
        fence = _FENCE.match(lines[index])
        if fence is None:
            if _SETUP.match(text):
                in_setup = True
            elif in_setup and text == "-->":
                in_setup = False
            elif text.startswith("<!--") and (found := _MARKER.match(text)) is not None:
                if marker is not None:
                    parsed.errors.append(f"{name}:{marker[1]}: this marker is not followed by a fenced block")
                marker = (found.group(1), number)
                index += 1
                continue
            if text:
                previous_was_sh = False
                if marker is not None:
                    parsed.errors.append(f"{name}:{marker[1]}: this marker is not followed by a fenced block")
                    marker = None
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(lines[start:end])
        kind = marker[0] if marker else ""
        if kind.startswith("save-as: "):
            found = _MARKER.match(f"<!-- {kind} -->")
            assert found is not None
            parsed.blocks.append(Block(start, body, hidden=in_setup, save_as=found.group("file")))
            previous_was_sh = False
        elif language == RUN:
            if kind.startswith("not run: "):
                parsed.errors.append(
                    f"{name}:{start}: a ```sh block runs; fence it as ```console to show it unrun"
                )
            parsed.blocks.append(Block(start, body, kind == "expect-failure", hidden=in_setup))
            previous_was_sh = True
        elif language == NOT_RUN:
            if not kind.startswith("not run: "):
                parsed.errors.append(
                    f"{name}:{start}: a ```console block needs `<!-- not run: WHY -->` right before it, "
                    "or fence it as ```sh so it runs"
                )
            parsed.not_run += 1
            previous_was_sh = False
        elif language in CONTENT:
            if language in OUTPUT and previous_was_sh and parsed.blocks[-1].output is None:
                parsed.blocks[-1].output = body
            elif kind:
                parsed.errors.append(f"{name}:{marker[1] if marker else start}: `{kind}` does not apply here")
            previous_was_sh = False
        else:
            parsed.errors.append(
                f"{name}:{start}: cannot classify a ```{language} block; fence commands as ```sh (run) or "
                "```console (not run, with a reason), other text with its language"
            )
            previous_was_sh = False
        marker = None
        index = end + 1
    if in_setup:
        parsed.errors.append(f"{name}: a `<!-- docs-test:` comment is never closed with `-->`")
    return parsed


def blocks_of(page: Path) -> list[Block]:
    """The blocks of a Markdown page the harness runs (or saves), in order."""
    return parse(page).blocks


def script_of(blocks: list[Block]) -> str:
    """One bash script running the blocks in order, a marker line before each block's output."""
    parts = [PREAMBLE]
    for number, block in enumerate(blocks):
        # A newline first: curl's answers do not end with one.
        parts.append(f"printf '\\n{MARK} {number}\\n'")
        if block.save_as is not None:
            delimiter = f"{MARK.strip('@')}-EOF"
            parts.append(f"cat > {block.save_as} <<'{delimiter}'\n{block.code}\n{delimiter}")
        elif block.expect_failure:
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
        # `…` inside a line stands for text the page does not repeat (a secret, an id).
        for part in filter(None, re.split(r"…|\.\.\.", needle)):
            found = haystack.find(part, position)
            assert found >= 0, (
                f"{page}:{block.line}: the page shows {shown.strip()!r}, which the command did not print "
                f"(after what matched so far):\n{printed}"
            )
            position = found + len(part)


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


def _go_cache() -> str | None:
    """The Go build cache of whoever runs the tests, so a page's `go build` is not a cold one."""
    go = shutil.which("go")
    if go is None:
        return None
    found = subprocess.run([go, "env", "GOCACHE"], capture_output=True, text=True, timeout=60, check=False)
    return found.stdout.strip() or None


ALL_PAGES = sorted(page.name for page in DOCS.glob("*.md"))
PAGES = [
    page for page in ALL_PAGES if any(not b.hidden and b.save_as is None for b in blocks_of(DOCS / page))
]


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_block_of_the_page_is_run_or_says_why_not(page: str) -> None:
    parsed = parse(DOCS / page)
    assert not parsed.errors, "\n".join(parsed.errors)


def test_pages_with_commands_are_found_by_glob() -> None:
    # The pages with commands when this harness was written; a new one joins PAGES by itself.
    assert {"api.md", "edge.md", "kubernetes.md", "oci.md", "quickstart.md", "writing-plugins-go.md"} <= set(
        PAGES
    )


@pytest.mark.timeout(PAGE_TIMEOUT_S + 60)
@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_page_runs(page: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if page.startswith("writing-plugins-go"):
        # Built first (or waited for, when another worker builds it): the page's own `go build` then
        # finds gRPC and go-plugin in the Go cache instead of compiling them beside that build.
        request.getfixturevalue("go_plugin")
    parsed = parse(DOCS / page)
    assert not parsed.errors, "\n".join(parsed.errors)
    blocks = parsed.blocks
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
    if (go_cache := _go_cache()) is not None:
        env["GOCACHE"] = go_cache
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
