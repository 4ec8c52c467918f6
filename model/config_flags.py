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


def option(default: Any, help: str, choices: tuple = (), section: str = "") -> Any:
    """A settings field with the help text (and choices) its flag shows, under `section` in --help."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices), "section": section})


def group(settings: type, help: str) -> Any:
    """A field holding a nested settings dataclass (default: its defaults)."""
    return dataclasses.field(default_factory=settings, metadata={"help": help, "group": settings})


def add_flags(parser: argparse.ArgumentParser, settings: type) -> None:
    """One `--flag` per field of `settings` (nested groups included), with help, default and choices;
    fields with a section are listed under its heading."""
    sections: dict[str, argparse._ArgumentGroup] = {}
    for item in dataclasses.fields(settings):
        if "group" in item.metadata:
            add_flags(parser.add_argument_group(item.metadata["help"]), item.metadata["group"])
            continue
        section = item.metadata.get("section")
        target = sections.setdefault(section, parser.add_argument_group(section)) if section else parser
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata["help"].replace("%", "%%")
        if isinstance(item.default, bool):
            target.add_argument(flag, action=argparse.BooleanOptionalAction, default=item.default, help=help_text)
        else:
            choices = item.metadata["choices"] or None
            target.add_argument(flag, type=type(item.default), default=item.default, choices=choices, help=help_text)


def from_flags(namespace: argparse.Namespace, settings: type) -> Any:
    """The `settings` instance that parsed flags describe (the inverse of `add_flags`)."""
    values = {}
    for item in dataclasses.fields(settings):
        group_type = item.metadata.get("group")
        values[item.name] = from_flags(namespace, group_type) if group_type else getattr(namespace, item.name)
    return settings(**values)


def flat_values(settings: Any) -> dict[str, Any]:
    """A settings instance as {flag destination: value}, nested groups flattened (as `add_flags` names them)."""
    values = {}
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        values.update(flat_values(value) if "group" in item.metadata else {item.name: value})
    return values


def parse_flags(
    settings: type,
    argv: list[str] | None,
    description: str | None,
    defaults: Any = None,
    parser: argparse.ArgumentParser | None = None,
) -> Any:
    """Parse `argv` into a `settings` instance; `--help` lists every field. `defaults` (an instance)
    replaces the class's defaults, e.g. a preset's; `parser` may bring flags of its own."""
    parser = parser or make_parser(description)
    add_flags(parser, settings)
    if defaults is not None:
        parser.set_defaults(**flat_values(defaults))
    return from_flags(parser.parse_args(argv), settings)
