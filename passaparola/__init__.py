"""Passaparola's composition root: the CLI, the config, the daemon. The only package that knows all others."""

__version__ = "0.1.0"
