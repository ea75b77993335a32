"""`passaparola`: the command line. Builds the object graph from the config and hands it to the daemon.

`common` holds the root group and what every command shares; each command module registers its group on
`main` when imported here, so `from passaparola.cli import main` gives the whole command line.
"""

from __future__ import annotations

from passaparola.cli import advocates, alerts, operations, replies, sentiment, triage
from passaparola.cli.common import (
    EXIT_CONFIG,
    RedactSecrets,
    build_daemon,
    build_notifier,
    build_taggers,
    config_option,
    configure,
    fail,
    load_settings,
    main,
    open_store,
    secrets_of,
    setup_logging,
    stop_on_signals,
)
from passaparola.cli.operations import demo_settings, start_web

__all__ = [
    "EXIT_CONFIG",
    "RedactSecrets",
    "advocates",
    "alerts",
    "build_daemon",
    "build_notifier",
    "build_taggers",
    "config_option",
    "configure",
    "demo_settings",
    "fail",
    "load_settings",
    "main",
    "open_store",
    "operations",
    "replies",
    "secrets_of",
    "sentiment",
    "setup_logging",
    "start_web",
    "stop_on_signals",
    "triage",
]
