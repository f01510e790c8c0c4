"""Writes the generated reference pages of the docs site from the code they describe.

    python scripts/gen_docs.py          # rewrite docs/reference/settings.md and docs/reference/cli.md
    python scripts/gen_docs.py --check  # exit 1 (and say which) when a committed page differs

- ``docs/reference/settings.md`` from the pydantic ``Settings`` class in ``backend/settings.py``: one row per
  field (its ``HITL_*`` variable, type and constraints, default, ``Field(description=...)``), grouped under the
  ``# Section`` comments of the class body.
- ``docs/reference/cli.md`` from the argparse parsers of ``backend/cli/main.py`` (``build_parser``): every
  command and subcommand, its help, usage and options.

``tests/test_docs.py`` renders both in memory and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS_PAGE = "docs/reference/settings.md"
CLI_PAGE = "docs/reference/cli.md"
REGENERATE = "python scripts/gen_docs.py"
USAGE_WIDTH = 100  # fixed, so the page does not depend on the terminal that generated it
ENV_VAR = r"\$?\bHITL_[A-Z0-9_]*(\\\*)?(/[\w./-]*\w)?"  # HITL_X, HITL_*, $HITL_DATA_DIR/reports: code spans


# ---------------------------------------------------------------- markdown helpers


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped, ``<`` escaped outside code spans."""
    parts = " ".join(str(text).split()).split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        part = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
        parts[i] = re.sub(ENV_VAR, lambda m: _code(m.group(0).replace("\\", "")), part)
    return "`".join(parts).replace("|", "\\|")


def _code(text: str) -> str:
    text = str(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# ---------------------------------------------------------------- settings


def _sections(source: str, class_name: str) -> dict[str, str]:
    """Field name → the ``# Section`` comment above it in the class body."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    lines = source.splitlines()
    headers = {
        i + 1: m.group(1)
        for i, line in enumerate(lines[cls.lineno : cls.end_lineno], start=cls.lineno)
        if (m := re.fullmatch(r" {4}# (.+)", line))
    }
    found: dict[str, str] = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above = [line for line in headers if line < node.lineno]
            found[node.target.id] = headers[max(above)] if above else "General"
    return found


def _type_text(annotation: object, metadata: list[object]) -> str:
    from pydantic import SecretStr

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (annotation,) = [a for a in args if a is not type(None)]
        args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        text = "one of " + ", ".join(_code(a) for a in args)
    elif origin is list:
        text = f"JSON list of {_type_text(args[0], [])}s" if args else "JSON list"
    else:
        names = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path", SecretStr: "secret"}
        text = names.get(annotation, getattr(annotation, "__name__", str(annotation)))  # type: ignore[call-overload]
    bounds = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{sign} {getattr(item, attr)}")
        pattern = getattr(item, "pattern", None)
        if pattern and (m := re.fullmatch(r"\^\(([\w|-]+)\)\$", pattern)):
            text = "one of " + ", ".join(_code(a) for a in m.group(1).split("|"))
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default_text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, str | Path):
        text = str(value)
        if Path(text).is_absolute() and Path(text).is_relative_to(ROOT):  # a path into this checkout
            text = Path(text).relative_to(ROOT).as_posix()
        return _code(text) if text else "empty"
    if isinstance(value, list | dict):
        return _code(json.dumps(value))
    return _code(repr(value))


def settings_page() -> str:
    from backend import settings as module

    cls = module.Settings
    sections = _sections(Path(module.__file__).read_text(), cls.__name__)
    prefix = cls.model_config.get("env_prefix", "")
    out = [
        "# Settings reference",
        "",
        f"<!-- Generated from backend/settings.py by scripts/gen_docs.py: edit a field's description there, then "
        f"run `{REGENERATE}`. -->",
        "",
        f"Every setting is an environment variable `{prefix}<NAME>`, read once per process into one typed object "
        "(`backend/settings.py`, pydantic-settings). Every default works on one machine with nothing configured: "
        "the bundled MiniLM encoder, a registry under `./var`, and an embedded Redis started on demand. A value "
        "outside a setting's type or range is refused with pydantic's validation error, which names the setting "
        "(lower case, without the prefix). Booleans are `true` or `false`; lists are JSON. An empty credential "
        "counts as unset. Which settings matter when: "
        "[Configuration](../operations/configuration.md).",
        "",
        f"{len(cls.model_fields)} settings.",
    ]
    current = None
    for name, field in cls.model_fields.items():
        section = sections.get(name, "General")
        if section != current:
            current = section
            out += ["", f"## {section}", "", "| variable | type | default | meaning |", "|---|---|---|---|"]
        row = [
            _code(f"{prefix}{name}".upper()),
            _cell(_type_text(field.annotation, field.metadata)),
            _cell(_default_text(field.default)),
            _cell(field.description or ""),
        ]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- CLI


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        takes_value = action.nargs != 0
        metavar = action.metavar or (action.dest if not action.option_strings else action.dest.upper())
        if action.option_strings:
            name = ", ".join(action.option_strings) + (f" {metavar}" if takes_value else "")
        else:
            name = metavar + (" …" if action.nargs in ("+", "*") else "")
        notes = []
        if action.choices is not None:
            notes.append("one of " + ", ".join(_code(c) for c in action.choices))
        if action.required:
            notes.append("required")
        elif (
            takes_value
            and action.option_strings
            and action.default not in (None, argparse.SUPPRESS)
            and "default" not in (action.help or "").lower()
            and f"({action.default})" not in (action.help or "")
        ):
            notes.append(f"default {_code(action.default)}")
        help_text = (action.help or "") % {"default": action.default} if action.help else ""
        rows.append(f"| {_code(name)} | {_cell(help_text)} | {_cell('; '.join(notes))} |")
    return rows


def _command_section(prog: str, help_text: str, parser: argparse.ArgumentParser, depth: int) -> list[str]:
    out = ["", f"{'#' * depth} `{prog}`", ""]
    if help_text:
        out += [_cell(help_text[:1].upper() + help_text[1:]) + ("" if help_text.endswith(".") else "."), ""]
    if parser.description and parser.description != help_text:
        out += [_cell(parser.description), ""]
    out += ["```text", _usage(parser), "```"]
    rows = _option_rows(parser)
    if rows:
        out += ["", "| argument | meaning | notes |", "|---|---|---|", *rows]
    subs = _subcommands(parser)
    if subs:
        out += ["", "| command | what it does |", "|---|---|"]
        out += [f"| {_code(f'{prog} {name}')} | {_cell(text)} |" for name, text, _ in subs]
        for name, text, sub in subs:
            out += _command_section(f"{prog} {name}", text, sub, min(depth + 1, 4))
    return out


def cli_page() -> str:
    from backend.cli.main import build_parser

    parser = build_parser()
    out = [
        "# Command-line reference",
        "",
        f"<!-- Generated from the parsers of backend/cli/main.py by scripts/gen_docs.py: edit the help there, then "
        f"run `{REGENERATE}`. -->",
        "",
        "`hitl` is installed into `.venv/bin` by `./scripts/run.sh` (or `scripts/bootstrap.sh`). Every command "
        "reads its settings from `HITL_*` environment variables ([settings reference](settings.md)); its "
        "options override them where both exist.",
    ]
    out += _command_section(parser.prog, "", parser, 2)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

PAGES = {SETTINGS_PAGE: settings_page, CLI_PAGE: cli_page}


def render() -> dict[str, str]:
    """Every generated page, path (relative to the repository root) → text."""
    return {path: make() for path, make in PAGES.items()}


def stale(pages: dict[str, str] | None = None) -> list[str]:
    """The generated pages whose committed text differs from what the code says."""
    pages = render() if pages is None else pages
    return [path for path, text in pages.items() if not (ROOT / path).exists() or (ROOT / path).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is out of date")
    args = parser.parse_args(argv)
    pages = render()
    if args.check:
        out_of_date = stale(pages)
        for path in out_of_date:
            print(f"{path} is out of date: run {REGENERATE}", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in pages.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
