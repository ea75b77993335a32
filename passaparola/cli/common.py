"""What every command group shares: the root group, the config option, settings, store, logging, the object graph."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import SecretStr

from notifiers.alert import Notifier
from notifiers.apprise_notifier import AppriseNotifier
from notifiers.log import LogNotifier
from passaparola import config as configuration
from passaparola.actions import Refusal
from passaparola.backfill import BackfillError
from passaparola.config import ConfigError, Settings
from passaparola.daemon import Daemon
from passaparola.exports import ExportError
from passaparola.retraining import live_model_dir
from rules.analysis import Analyzer
from rules.sentiment import ModelError
from storage.people import PeopleError
from storage.store import StorageError, Store

log = logging.getLogger("passaparola")
EXIT_CONFIG = 2


class RedactSecrets(logging.Filter):
    """Replaces every configured secret by a mask in every log record, whatever logged it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, configuration.MASK)
            record.msg, record.args = message, None
        return True


def secrets_of(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, dict):
        for item in value.values():
            yield from secrets_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from secrets_of(item)


def setup_logging(verbose: bool, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("tweepy", "urllib3", "httpx", "httpcore", "requests_oauthlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # tweepy logs the bearer token at DEBUG


def fail(lines: Iterable[str], code: int = EXIT_CONFIG) -> NoReturn:
    for line in lines:
        click.echo(f"passaparola: {line}", err=True)
    sys.exit(code)


def load_settings(config_file: str | None) -> Settings:
    try:
        return configuration.load(configuration.config_path(config_file))
    except ConfigError as error:
        fail(error.problems)


def configure(ctx: click.Context, config_file: str | None) -> Settings:
    """Load the settings and log with every configured secret masked: the start of each working command."""
    settings = load_settings(config_file)
    setup_logging(ctx.obj["verbose"], secrets_of(settings.raw))
    return settings


def open_store(settings: Settings) -> Store:
    try:
        return Store.open(settings.storage.path, settings.storage.busy_timeout_seconds)
    except StorageError as error:
        fail([str(error)])


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM (docker stop) and SIGINT (Ctrl-C) set an event the loop waits on: it exits between jobs."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def build_notifier(settings: Settings) -> Notifier:
    if settings.notify.type == "apprise":
        return AppriseNotifier(
            settings.notify.route_urls(), settings.notify.config_file, settings.notify.timeout_seconds
        )
    path = Path(settings.notify.alerts_file) if settings.notify.alerts_file else None
    return LogNotifier(path=path)


def build_taggers(settings: Settings, store: Store | None = None, mode: str | None = None) -> list[Analyzer]:
    """The pipeline that reads each new mention (loaded on its first batch), unless switched off; with a store,
    on the retrained model that is live there."""
    if not settings.analysis.enabled:
        return []
    live = live_model_dir(store, _configured_model_dir(settings)) if store is not None else None
    return [Analyzer(settings.analysis.pipeline(mode, live))]


def build_daemon(settings: Settings, store: Store) -> Daemon:
    """The daemon with its notifier and its reading pipeline, which it rebuilds after a retrained model goes live."""
    return Daemon(
        settings,
        store,
        build_notifier(settings),
        taggers=build_taggers(settings, store),
        reload_taggers=lambda: build_taggers(settings, store),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG (secrets stay masked).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Passaparola: hear what people say about the brand, answer them in time, reward those who praise it."""
    ctx.obj = {"verbose": verbose}


config_option = click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="TOML config (default: $PASSAPAROLA_CONFIG, else built-in defaults).",
)


def _configured_model_dir(settings: Settings) -> Path | None:
    return Path(settings.analysis.model_dir) if settings.analysis.model_dir else None


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@contextmanager
def _acting(config_file: str | None) -> Iterator[tuple[Settings, Store]]:
    """Settings and an open store for a command that acts (`passaparola.actions`); a refusal is a clear exit 2."""
    settings = load_settings(config_file)
    store = open_store(settings)
    try:
        yield settings, store
    except Refusal as refusal:
        fail([str(refusal)])
    finally:
        store.close()


@contextmanager
def _people_store(config_file: str | None) -> Iterator[tuple[Settings, Store]]:
    """Settings and an open store for the advocate commands; a `PeopleError` or `ExportError` is a clear exit 2."""
    settings = load_settings(config_file)
    store = open_store(settings)
    try:
        yield settings, store
    except (PeopleError, ExportError, Refusal) as error:
        fail([str(error)])
    finally:
        store.close()


@contextmanager
def backfill_stops(kept: Callable[[], str]) -> Iterator[None]:
    """How `import` and `reanalyze` end early: a model that cannot load, a worker that died, or Ctrl-C (exit 130),
    each saying what this run kept (``kept()``, e.g. "120 new rows stored by this run") and that the same command
    goes on."""
    go_on = "run the same command again to go on"
    try:
        yield
    except ModelError as error:
        fail([str(error)])
    except BackfillError as error:
        fail([f"{error}; {kept()} are kept: {go_on}"])
    except KeyboardInterrupt:
        click.echo(f"interrupted: {kept()} are kept; {go_on}", err=True)
        sys.exit(130)
