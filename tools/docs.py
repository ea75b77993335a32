"""What the documentation generates from the code, with cog (`make docs` rewrites, the tests check it is current).

``docs/cli.md`` holds every command's ``--help`` between cog markers; ``help_of`` prints one as a user sees it.
"""

from __future__ import annotations

from click.testing import CliRunner

#: The width the help texts are wrapped at in the docs (a terminal would wrap them at its own).
WIDTH = 100


def help_of(*command: str) -> str:
    """``passaparola COMMAND --help`` as a fenced block for the docs."""
    from passaparola.cli import main

    result = CliRunner().invoke(main, [*command, "--help"], prog_name="passaparola", terminal_width=WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"passaparola {' '.join(command)} --help failed: {result.output}")
    return f"```text\n$ passaparola {' '.join((*command, '--help'))}\n{result.output.rstrip()}\n```\n"


def commands() -> list[tuple[str, ...]]:
    """Every command and group, depth first, as argument paths: (), ("run",), ("triage",), ("triage", "queue")..."""
    import click

    from passaparola.cli import main

    found: list[tuple[str, ...]] = []

    def walk(group: click.Command, path: tuple[str, ...]) -> None:
        found.append(path)
        if isinstance(group, click.Group):
            for name in sorted(group.commands):
                walk(group.commands[name], (*path, name))

    walk(main, ())
    return found
