"""Settings written once, as dataclass fields, and offered as command-line flags.

Each field carries its help text and choices (`option`), so `--help` shows what a flag does,
its default and the values it takes, and no flag can drift from the code that reads it. A field
holding another settings dataclass (`group`) gives that class's flags under a heading.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from constants import ROOT_DIR


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; every flag's help ends with its default (a path inside the
    repository shown relative to it), unless the help already states it. Every CLI uses it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "(default" in text or silent or not action.option_strings:
            return text
        default = action.default
        if isinstance(default, Path | str):  # shown as text, relative to the repository when inside it
            default = str(default).removeprefix(f"{ROOT_DIR}/")
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else repr(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def make_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser that shows `description` as written and each flag's default."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def option(default: Any, help: str, choices: tuple = ()) -> Any:
    """A settings field with the help text (and choices) its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices)})


def group(settings: type, help: str) -> Any:
    """A field holding a nested settings dataclass (default: its defaults)."""
    return dataclasses.field(default_factory=settings, metadata={"help": help, "group": settings})


def add_flags(parser: argparse.ArgumentParser, settings: type) -> None:
    """One `--flag` per field of `settings` (nested groups included), with help, default and choices."""
    for item in dataclasses.fields(settings):
        if "group" in item.metadata:
            add_flags(parser.add_argument_group(item.metadata["help"]), item.metadata["group"])
            continue
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata["help"].replace("%", "%%")
        if isinstance(item.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=item.default, help=help_text)
        else:
            choices = item.metadata["choices"] or None
            parser.add_argument(flag, type=type(item.default), default=item.default, choices=choices, help=help_text)


def from_flags(namespace: argparse.Namespace, settings: type) -> Any:
    """The `settings` instance that parsed flags describe (the inverse of `add_flags`)."""
    values = {}
    for item in dataclasses.fields(settings):
        group_type = item.metadata.get("group")
        values[item.name] = from_flags(namespace, group_type) if group_type else getattr(namespace, item.name)
    return settings(**values)


def parse_flags(settings: type, argv: list[str] | None, description: str | None) -> Any:
    """Parse `argv` into a `settings` instance; `--help` lists every field."""
    parser = make_parser(description)
    add_flags(parser, settings)
    return from_flags(parser.parse_args(argv), settings)
