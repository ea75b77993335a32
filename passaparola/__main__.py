"""``python -m passaparola`` and the ``passaparola`` command.

Kept free of imports until `main` runs: a worker process that multiprocessing spawns (the feed parsers)
re-imports the main module of its parent, and must not pay for the CLI's spaCy, numpy and pydantic.
"""

from __future__ import annotations


def main() -> None:
    from passaparola.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
