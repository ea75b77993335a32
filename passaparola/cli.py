"""`passaparola`: the command line. Builds the object graph from the config and hands it to the daemon."""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import SecretStr

from listener.demo import DemoSource
from notifiers.alert import Alert, Notifier
from notifiers.apprise_notifier import AppriseNotifier
from notifiers.log import LogNotifier
from passaparola import config as configuration
from passaparola.config import ConfigError, Settings, SourceSpec
from passaparola.daemon import Daemon, system_clock
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


@main.command()
@click.argument("path", default="passaparola.toml", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Write a commented starter config to PATH (never overwrites)."""
    target = Path(path)
    if target.exists():
        fail([f"{target} exists already; choose another path or remove it first"])
    starter = (resources.files("passaparola") / "starter.toml").read_text(encoding="utf-8")
    try:
        target.write_text(starter, encoding="utf-8")
    except OSError as error:
        fail([f"cannot write {target} ({error.strerror}); choose a writable path"])
    click.echo(f"wrote {target}; check it with: passaparola check --config {target}")


@main.command()
@config_option
def check(config_file: str | None) -> None:
    """Validate the config and print the effective settings, secrets masked (exit 2 on problems)."""
    settings = load_settings(config_file)
    click.echo(f"# effective configuration from {settings.origin}")
    click.echo(configuration.dumps(settings))


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Run one full cycle (every source, rules, outbox) and exit.")
@click.pass_context
def run(ctx: click.Context, config_file: str | None, once: bool) -> None:
    """Run the daemon until SIGTERM or Ctrl-C."""
    settings = load_settings(config_file)
    setup_logging(ctx.obj["verbose"], secrets_of(settings.raw))
    store = open_store(settings)
    daemon = Daemon(settings, store, build_notifier(settings))
    try:
        if once:
            daemon.cycle()
        else:
            with stop_on_signals() as stop:
                daemon.run(stop)
    finally:
        store.close()


@main.command()
@click.option("--db", "db_path", metavar="PATH", help="Keep the demo database here (default: a temporary one).")
@click.option("--duration", default=10.0, show_default=True, help="Seconds to run the daemon; 0 runs until Ctrl-C.")
@click.option("--alerts-file", metavar="PATH", help="Also append alerts here (default: beside the database).")
@click.pass_context
def demo(ctx: click.Context, db_path: str | None, duration: float, alerts_file: str | None) -> None:
    """Run the real daemon on the bundled Caffè Aurora sample: no credentials, no network."""
    setup_logging(ctx.obj["verbose"])
    with tempfile.TemporaryDirectory(prefix="passaparola-demo-") as scratch:
        db = Path(db_path) if db_path else Path(scratch) / "demo.db"
        alerts = Path(alerts_file) if alerts_file else db.with_name("demo-alerts.jsonl")
        defaults = configuration.load(None, environ={})
        settings = replace(
            defaults,
            storage=defaults.storage.model_copy(update={"path": str(db)}),
            daemon=defaults.daemon.model_copy(update={"rules_every_seconds": 5, "outbox_every_seconds": 2}),
            notify=defaults.notify.model_copy(update={"alerts_file": str(alerts)}),
            sources=(SourceSpec("demo", "demo", 30, DemoSource()),),
        )
        store = open_store(settings)
        click.echo(f"passaparola demo: database {db}, alerts also written to {alerts}")
        try:
            with stop_on_signals() as stop:
                Daemon(settings, store, build_notifier(settings)).run(stop, duration=duration or None)
            counts = store.counts()
        finally:
            store.close()
        click.echo(
            f"\npassaparola demo: {counts['mentions']} mentions from {counts['authors']} authors stored, "
            f"{counts['answered']} answered by the brand, {counts['open']} still open; "
            f"{counts['alerts_sent']} alerts sent, {counts['alerts_pending']} pending."
        )
        if not db_path:
            click.echo("(temporary database removed; pass --db PATH to keep it)")


@main.command()
@config_option
def status(config_file: str | None) -> None:
    """Print each source's health and the queue sizes."""
    settings = load_settings(config_file)
    store = open_store(settings)
    try:
        counts = store.counts()
        click.echo(" ".join(f"{name}={value}" for name, value in counts.items()))
        for health in store.all_source_health():
            last = health.last_success_at.isoformat() if health.last_success_at else "never"
            line = f"source {health.name} ({health.kind}): last success {last}, {health.mentions_total} mentions"
            if health.consecutive_failures:
                line += f", FAILING x{health.consecutive_failures}: {health.last_error}"
            if health.next_retry_at:
                line += f", next try {health.next_retry_at.isoformat()}"
            shown = {k: v for k, v in health.details.items() if v not in ("", [], {}, None)}
            if shown:
                line += ", " + ", ".join(f"{k}={v}" for k, v in shown.items())
            click.echo(line)
    finally:
        store.close()


@main.command()
@config_option
@click.option("--max-age", default=60, show_default=True, help="Seconds after which the heartbeat is stale.")
def healthcheck(config_file: str | None, max_age: int) -> None:
    """Exit 0 when the daemon's loop beat recently and the database answers, else 1 (for HEALTHCHECK)."""
    settings = load_settings(config_file)
    try:
        store = Store.open(settings.storage.path, settings.storage.busy_timeout_seconds)
        try:
            beat = store.heartbeat()
        finally:
            store.close()
    except (StorageError, sqlite3.Error) as error:
        fail([f"unhealthy: {error}"], code=1)
    age = (system_clock() - beat).total_seconds() if beat else None
    if age is None or age > max_age:
        fail([f"unhealthy: no loop heartbeat {'yet' if age is None else f'for {age:.0f} s'}"], code=1)
    click.echo(f"healthy: heartbeat {age:.0f} s ago")


@main.group()
def alerts() -> None:
    """Work with alert delivery."""


@alerts.command("test")
@config_option
@click.option("--route", required=True, help="The route (apprise tag) to send a test alert to.")
@click.pass_context
def alerts_test(ctx: click.Context, config_file: str | None, route: str) -> None:
    """Send a test alert to a route and report, per URL, whether it was delivered (exit 1 if any failed)."""
    settings = load_settings(config_file)
    setup_logging(ctx.obj["verbose"], secrets_of(settings.raw))
    notifier = build_notifier(settings)
    alert = Alert(
        key=f"test:{route}:{system_clock().isoformat()}",
        kind="test",
        title="Passaparola test alert",
        body=f"If you read this, the route {route!r} reaches you.",
        route=route,
    )
    if isinstance(notifier, AppriseNotifier):
        outcomes = notifier.deliver(alert)
        for outcome in outcomes:
            mark = "delivered" if outcome.ok else f"FAILED: {outcome.detail}"
            click.echo(f"{outcome.service} {outcome.url}: {mark}")
        sys.exit(0 if all(o.ok for o in outcomes) else 1)
    delivery = notifier.send(alert)
    sys.exit(0 if delivery.ok else 1)
