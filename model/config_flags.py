"""Settings written once, as dataclass fields, and offered as command-line flags.

Each field carries its help text and choices (`option`), so `--help` shows what a flag does,
its default and the values it takes, and no flag can drift from the code that reads it. A field
holding another settings dataclass (`group`) gives that class's flags under a heading.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


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
        help_text = f"{item.metadata['help']} (default: {item.default!r})".replace("%", "%%")
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
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, settings)
    return from_flags(parser.parse_args(argv), settings)
