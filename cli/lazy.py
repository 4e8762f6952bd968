"""A click group whose subcommands are imported only when used (`dockyard --version` and
every other command stay fast: a command pays for its own imports)."""

from __future__ import annotations

import importlib

import click


def lazy_group(commands: dict[str, str]) -> type[click.Group]:
    """A Group class that adds `commands` (name -> "module:attribute") on first use."""

    class LazyCommands(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted({*super().list_commands(ctx), *commands})

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name not in self.commands and cmd_name in commands:
                module, _, name = commands[cmd_name].partition(":")
                self.add_command(getattr(importlib.import_module(module), name), cmd_name)
            return super().get_command(ctx, cmd_name)

    return LazyCommands
