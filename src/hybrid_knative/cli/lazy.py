"""A click group whose feature commands are imported only when they are invoked.

`hybrid-knative --help` lists every command from a table (name → "module:attr", one-line help) without
importing the feature modules (lightkube, httpx, dns.resolver, sh, jinja2 … stay unloaded); running
`hybrid-knative NAME …` or `hybrid-knative NAME --help` imports that one module. A unit test checks that
each table line's help equals the command's real short help, so the table cannot drift.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import click


class LazyCommand(NamedTuple):
    target: str  # "package.module:attribute"
    short_help: str  # must equal the command's own get_short_help_str() (tests/unit/test_cli_lazy.py)


def load_command(target: str) -> click.Command:
    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class LazyGroup(click.Group):
    """click.Group plus `lazy`: {name: LazyCommand}. Eager commands (added with @group.command) still work."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def add_lazy(self, name: str, target: str, short_help: str) -> None:
        self.lazy[name] = LazyCommand(target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy:
            command = load_command(self.lazy[cmd_name].target)
            self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lazy commands show their table help (nothing imported)."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, _shorten(self.lazy[name].short_help, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    """A one-line help cut at a word boundary to ``limit`` characters, like click's own listing."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" .,;:") + "..."


def table_mismatches(group: LazyGroup, ctx: click.Context, names: Sequence[str] | None = None) -> list[str]:
    """Table lines whose help differs from the command's real short help (used by the unit test)."""
    wrong = []
    for name in names or sorted(group.lazy):
        entry = group.lazy[name]
        real = load_command(entry.target).get_short_help_str(limit=10_000)
        if real != entry.short_help:
            wrong.append(f"{name}: table says {entry.short_help!r}, the command says {real!r}")
    return wrong
