"""`solstice plugin new`: a plugin project (plugin, tests, Makefile, README) from the bundled templates.

Each hook has one template file with named sections (its config schema, configure code, method,
tests, ...); the project's files are assembled from the sections of the chosen hooks.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from solstice.authoring.errors import AuthoringError
from solstice.hooks import HOOK_ENUMS, PLUGIN_HOOKS
from solstice.protocol import pb

DEFAULT_HOOKS = ("pre_auth",)
# A slug as the API takes it, also valid as an OCI repository component: no leading, trailing
# or doubled separator problems, so `plugins/NAME` can be pushed as it is.
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MAX_NAME = 100
_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")
_SECTION = re.compile(r"^#@ (\w+)$", re.MULTILINE)


@dataclass(frozen=True)
class Scaffold:
    """What `new_project` wrote: the project directory and its files, relative to it."""

    directory: Path
    files: tuple[str, ...]
    hooks: tuple[str, ...]


def check_name(name: str) -> str:
    """The name when it is a slug; AuthoringError naming it otherwise."""
    if len(name) > _MAX_NAME or not _SLUG.match(name):
        raise AuthoringError(
            f"plugin name {name!r} is not a slug; use lowercase letters, digits and single hyphens, "
            f"starting and ending with a letter or digit, at most {_MAX_NAME} characters (e.g. my-plugin)"
        )
    return name


def check_hooks(hooks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The hooks in pipeline order, once each (DEFAULT_HOOKS when none); AuthoringError on an unknown one."""
    for hook in hooks:
        if hook not in PLUGIN_HOOKS:
            raise AuthoringError(f"unknown hook {hook!r}; valid hooks: {', '.join(PLUGIN_HOOKS)}")
    chosen = set(hooks) or set(DEFAULT_HOOKS)
    return tuple(hook for hook in PLUGIN_HOOKS if hook in chosen)


def class_name(name: str) -> str:
    """The plugin's Python class name: my-plugin -> MyPlugin, never clashing with the SDK's Plugin."""
    camel = "".join(part.capitalize() for part in name.split("-"))
    if not camel[0].isalpha():
        camel = f"Plugin{camel}"
    return f"{camel}Plugin" if keyword.iskeyword(camel) or camel == "Plugin" else camel


def new_project(name: str, hooks: list[str] | tuple[str, ...], parent: Path) -> Scaffold:
    """Write project NAME under `parent` all at once: on any error nothing is left behind."""
    check_name(name)
    chosen = check_hooks(hooks)
    target = parent / name
    if parent.exists() and not parent.is_dir():
        raise AuthoringError(f"{parent} is not a directory; pass --dir an existing or new directory")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise AuthoringError(f"{target} already exists and is not a directory; choose another NAME or --dir")
    if target.is_dir() and any(target.iterdir()):
        raise AuthoringError(
            f"directory {target} already exists and is not empty; choose another NAME or --dir"
        )
    files = render_project(name, chosen)
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then renamed into place: a failure leaves no partial project.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        for relative, (text, mode) in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        staging.chmod(0o755 & ~_umask())
        if target.is_dir():
            target.rmdir()  # empty, checked above
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent:
            shutil.rmtree(parent, ignore_errors=True)
        raise
    return Scaffold(target.absolute(), tuple(files), chosen)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def render_project(name: str, hooks: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """Every file of the project: relative path -> (text, mode)."""
    sections = {hook: _hook_sections(hook) for hook in hooks}
    values = _values(name, hooks, sections)
    executable = 0o755 & ~_umask()
    regular = 0o644 & ~_umask()
    fill = {key: _fill(text, {"name": name}) for key, text in values.items()}
    fill["hook_tests"] = _fill("\n\n\n".join(sections[h]["test"].strip() for h in hooks), fill)
    return {
        "plugin.py": (_render("plugin.py.tmpl", fill), executable),
        "tests/test_plugin.py": (_render("test_plugin.py.tmpl", fill), regular),
        "Makefile": (_render("Makefile.tmpl", fill), regular),
        "README.md": (_render("README.md.tmpl", fill), regular),
        ".gitignore": (_render("gitignore.tmpl", fill), regular),
    }


def _values(name: str, hooks: tuple[str, ...], sections: dict[str, dict[str, str]]) -> dict[str, str]:
    """The placeholders' values, assembled from the chosen hooks' sections."""

    def joined(section: str) -> str:
        return "\n".join(sections[h][section].rstrip("\n") for h in hooks if sections[h].get(section))

    def words(section: str) -> set[str]:
        return {word for h in hooks for word in sections[h].get(section, "").split()}

    sdk = sorted(words("sdk") | {"Plugin", "pb", "serve"}, key=lambda word: (not word[0].isupper(), word))
    example = json.loads("{" + ", ".join(sections[h]["example"].strip() for h in hooks) + "}")
    example = json.loads(_fill(json.dumps(example), {"name": name}))
    summaries = [f"- `{h}`: {sections[h]['summary'].strip()}" for h in hooks]
    abc = sorted(words("abc"))
    return {
        "name": name,
        "class_name": class_name(name),
        "module_name": name.replace("-", "_") + "_plugin",
        "description": f"A Solstice plugin for {', '.join(hooks)}.",
        "hook_list": ", ".join(hooks),
        "hook_plural": "s" if len(hooks) > 1 else "",
        "hook_summaries": "\n".join(summaries),
        "hook_json": json.dumps(list(hooks)),
        # One per line with a trailing comma: the layout ruff format keeps for any number of hooks.
        "hook_enums": "[\n" + "".join(f'        "{pb.Hook.Name(HOOK_ENUMS[h])}",\n' for h in hooks) + "    ]",
        "stdlib_imports": "".join(f"\nimport {m}" for m in sorted(words("stdlib") | {"logging"})),
        "abc_imports": f"from collections.abc import {', '.join(abc)}\n" if abc else "",
        "sdk_imports": ", ".join(sdk),
        "config_example": json.dumps(example, indent=4),
        "config_inline": json.dumps(example),
        "schema_properties": joined("schema"),
        "init": joined("init") + "\n" if any("init" in sections[h] for h in hooks) else "",
        "configure": joined("configure"),
        "methods": "\n" + "\n\n".join(sections[h]["method"].rstrip("\n") for h in hooks) + "\n",
    }


def _template(name: str) -> str:
    return resources.files("solstice.authoring").joinpath("templates", name).read_text()


def _hook_sections(hook: str) -> dict[str, str]:
    """A hook template's sections: `#@ NAME` lines start each one."""
    parts = _SECTION.split(_template(f"hooks/{hook}.py.tmpl"))
    return {parts[i]: parts[i + 1].lstrip("\n") for i in range(1, len(parts) - 1, 2)}


def _fill(text: str, values: dict[str, str]) -> str:
    """Replace `{{ key }}` placeholders; only known keys, so a typo in a template fails loudly."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {key!r} has no value")
        return values[key]

    return _PLACEHOLDER.sub(value, text)


def _render(template: str, values: dict[str, str]) -> str:
    return _fill(_template(template), values)
