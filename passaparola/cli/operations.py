"""Running and looking after the daemon: init, check, run, web, demo, status, backup, healthcheck, drill,
hash-password and import."""

from __future__ import annotations

import secrets
import sqlite3
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import SecretStr

from listener.demo import DemoSource
from notifiers.alert import Notifier
from notifiers.log import printable
from passaparola import config as configuration
from passaparola.cli.common import (
    _minutes,
    _share,
    backfill_stops,
    build_daemon,
    build_notifier,
    build_taggers,
    config_option,
    configure,
    fail,
    load_settings,
    log,
    main,
    open_store,
    setup_logging,
    stop_on_signals,
)
from passaparola.config import Settings, SourceSpec, UserSettings
from passaparola.daemon import system_clock
from passaparola.drill import SCENARIOS, DrillError, run_drill
from rules.sentiment import MODES
from rules.triage import figures
from storage.store import StorageError, Store

if TYPE_CHECKING:
    from passaparola.web import WebServer


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
    settings = configure(ctx, config_file)
    store = open_store(settings)
    daemon = build_daemon(settings, store)
    web = start_web(settings, daemon=True) if settings.web.enabled and not once else None
    try:
        if once:
            daemon.cycle()
        else:
            with stop_on_signals() as stop:
                daemon.run(stop)
    finally:
        if web is not None:
            web.stop()
        store.close()


def start_web(settings: Settings, daemon: bool = False) -> WebServer:
    """The web app in a thread, on its own connection to the database (its modules load only then: a daemon
    without the web app does not carry them). ``daemon``: the loop runs in this process, so `/healthz` fails
    when its heartbeat goes stale."""
    from passaparola.web import WebServer, create_app

    try:
        shared = Store.open(settings.storage.path, settings.storage.busy_timeout_seconds, shared=True)
    except StorageError as error:
        fail([str(error)])
    app = create_app(settings, shared, system_clock, daemon=daemon)
    server = WebServer(app, settings.web.host, settings.web.port)
    try:
        server.start()
    except OSError as error:
        fail([str(error)])
    log.info("web app on http://%s:%d", settings.web.host, server.port)
    return server


@main.command("web")
@config_option
@click.pass_context
def web_command(ctx: click.Context, config_file: str | None) -> None:
    """Serve the web app alone (webhooks, /healthz) until SIGTERM or Ctrl-C; `run` serves it too when enabled."""
    settings = configure(ctx, config_file)
    with stop_on_signals() as stop:
        server = start_web(settings)
        click.echo(f"web app on http://{settings.web.host}:{server.port}")
        while not stop.is_set():
            stop.wait(1.0)  # wake each second: the signal handler sets the event
        server.stop()


def demo_settings(db: Path, alerts: Path, web_port: int | None = None, password: str = "") -> Settings:
    """The bundled demo's settings over database ``db``; with ``web_port``, the dashboard for user ``demo``."""
    with resources.as_file(resources.files("passaparola") / "demo.toml") as demo_config:
        defaults = configuration.load(demo_config, environ={})
    web = defaults.web
    if web_port is not None:
        from passaparola.web.auth import hash_password

        user = UserSettings(name="demo", role="admin", password_hash=SecretStr(hash_password(password)), member="")
        web = web.model_copy(update={"enabled": True, "port": web_port, "users": [user]})
    return replace(
        defaults,
        storage=defaults.storage.model_copy(update={"path": str(db)}),
        daemon=defaults.daemon.model_copy(update={"rules_every_seconds": 5, "outbox_every_seconds": 2}),
        notify=defaults.notify.model_copy(update={"alerts_file": str(alerts)}),
        web=web,
        sources=(SourceSpec("demo", "demo", 30, DemoSource()),),
    )


@main.command()
@click.option("--db", "db_path", metavar="PATH", help="Keep the demo database here (default: a temporary one).")
@click.option("--duration", default=10.0, show_default=True, help="Seconds to run the daemon; 0 runs until Ctrl-C.")
@click.option("--alerts-file", metavar="PATH", help="Also append alerts here (default: beside the database).")
@click.option("--web", "web_port", type=int, metavar="PORT", help="Also serve the dashboard on 127.0.0.1:PORT.")
@click.pass_context
def demo(
    ctx: click.Context, db_path: str | None, duration: float, alerts_file: str | None, web_port: int | None
) -> None:
    """Run the real daemon on the bundled Caffè Aurora sample: no credentials, no network."""
    setup_logging(ctx.obj["verbose"])
    with tempfile.TemporaryDirectory(prefix="passaparola-demo-") as scratch:
        db = Path(db_path) if db_path else Path(scratch) / "demo.db"
        alerts = Path(alerts_file) if alerts_file else db.with_name("demo-alerts.jsonl")
        password = secrets.token_urlsafe(12)
        settings = demo_settings(db, alerts, web_port, password)
        store = open_store(settings)
        click.echo(f"passaparola demo: database {db}, alerts also written to {alerts}")
        web = start_web(settings, daemon=True) if web_port is not None else None
        if web is not None:
            click.echo(f"dashboard: http://127.0.0.1:{web.port}/ (user demo, password {password}, for this run only)")
        try:
            with stop_on_signals() as stop:
                daemon = build_daemon(settings, store)
                daemon.run(stop, duration=duration or None)
            if web is not None:
                web.stop()
            counts = store.counts()
            loads = store.conversations.workloads()
            leaders = store.people.leaders(tiers=("advocate", "vip"), limit=3)
            suggestions = store.people.suggestions()
        finally:
            store.close()
        click.echo(
            f"\npassaparola demo: {counts['mentions']} mentions from {counts['authors']} authors stored, "
            f"{counts['answered']} answered by the brand, {counts['open']} still open; "
            f"{counts['alerts_sent']} alerts sent, {counts['alerts_pending']} pending."
        )
        click.echo(
            "workload: "
            + ", ".join(f"{m.name} {loads.get(m.name, 0)}/{m.capacity}" for m in settings.triage.members)
            + f"; {counts['open'] - sum(loads.values())} open items wait in the queue "
            "(everyone with the skill is at capacity or off shift)"
        )
        click.echo(
            "top advocates: "
            + ", ".join(f"{printable(a.person.name)} {a.score:.1f} ({a.tier})" for a in leaders)
            + "".join(
                f"; @{printable(s.handle)} looks like one person on {len(s.authors)} accounts "
                f"(passaparola advocates link {s.people[0]} {s.authors[-1]})"
                for s in suggestions
            )
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
        click.echo(
            " ".join(f"{name}={value}" for name, value in counts.items()) + f" db_mb={store.file_size() / 1e6:.1f}"
        )
        now = system_clock()
        overall = figures(store.conversations.between(now - timedelta(days=7), now), now).get("all", {}).get("all")
        if overall:
            mood = "-" if overall.satisfaction is None else f"{overall.satisfaction:+.2f}"
            click.echo(
                f"last 7 days: first response median {_minutes(overall.median_seconds)}, "
                f"p90 {_minutes(overall.p90_seconds)}, SLA met {_share(overall.compliance)}, "
                f"unanswered {_share(overall.unanswered_share)} ({overall.breached_open} past due), "
                f"satisfaction after our answers {mood}"
            )
        loads = store.conversations.workloads()
        for member in settings.triage.members:
            click.echo(f"member {member.name}: {loads.get(member.name, 0)} open of {member.capacity}")
        for health in store.health.sources():
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
@click.argument("destination", type=click.Path(dir_okay=False))
def backup(config_file: str | None, destination: str) -> None:
    """Copy the database to DESTINATION (a new file) while the daemon runs: SQLite's online backup."""
    settings = load_settings(config_file)
    store = open_store(settings)
    try:
        size = store.backup(Path(destination))
    except StorageError as error:
        fail([str(error)])
    finally:
        store.close()
    click.echo(f"backup written to {destination} ({size / 1e6:.1f} MB, integrity ok)")


@main.command()
@config_option
@click.option("--max-age", default=60, show_default=True, help="Seconds after which the heartbeat is stale.")
def healthcheck(config_file: str | None, max_age: int) -> None:
    """Exit 0 when the daemon's loop beat recently and the database answers, else 1 (for HEALTHCHECK)."""
    settings = load_settings(config_file)
    try:
        store = Store.open(settings.storage.path, settings.storage.busy_timeout_seconds)
        try:
            beat = store.health.heartbeat()
        finally:
            store.close()
    except (StorageError, sqlite3.Error) as error:
        fail([f"unhealthy: {error}"], code=1)
    age = (system_clock() - beat).total_seconds() if beat else None
    if age is None or age > max_age:
        fail([f"unhealthy: no loop heartbeat {'yet' if age is None else f'for {age:.0f} s'}"], code=1)
    click.echo(f"healthy: heartbeat {age:.0f} s ago")


@main.command()
@config_option
@click.option(
    "--scenario", default="spike", show_default=True, help=f"{', '.join(SCENARIOS)}, or a recorded JSONL file."
)
@click.option("--hours", default=3.0, show_default=True, help="Simulated hours.")
@click.option("--step-minutes", default=5.0, show_default=True, help="Simulated minutes per daemon cycle.")
@click.option("--start", type=click.DateTime(["%Y-%m-%dT%H:%M"]), help="Simulated start, UTC (default: now).")
@click.option("--route", default="", help="Send the alerts to this notify route (default: the console only).")
@click.option("--mode", type=click.Choice(MODES), default="fast", show_default=True, help="Analysis mode.")
def drill(
    config_file: str | None, scenario: str, hours: float, step_minutes: float, start: datetime | None, route: str,
    mode: str,
) -> None:  # fmt: skip
    """Rehearse a crisis on a copy of the database with a fast clock: who is alerted when, what breaches."""
    settings = load_settings(config_file)
    notifier: Notifier | None = None
    if route:
        if settings.notify.type != "apprise" or route not in settings.notify.routes:
            fail([f"--route {route!r}: no such route in [notify.routes]; add it, or leave --route out for the console"])
        notifier = build_notifier(settings)
    begin = start.replace(tzinfo=UTC) if start else system_clock().replace(second=0, microsecond=0)
    try:
        report = run_drill(
            settings, scenario, begin, hours, step_minutes, route, notifier, build_taggers(settings, mode=mode)
        )
    except DrillError as error:
        fail([str(error)])
    for line in report.lines():
        click.echo(line)


@main.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin instead of a prompt.")
def hash_password_command(from_stdin: bool) -> None:
    """Print an argon2 hash for ``[[web.users]] password_hash`` (the password itself never goes in the config)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        fail(["the password is shorter than 10 characters; choose a longer one"])
    from passaparola.web.auth import hash_password

    click.echo(hash_password(password))


@main.command("import")
@config_option
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file's extension.")
@click.option("--mode", type=click.Choice(MODES), default="fast", show_default=True, help="Analysis mode for the rows.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that read the rows, one model each (default: the machine's cores; a small file uses one).",
)
@click.pass_context
def import_file(
    ctx: click.Context, config_file: str | None, path: str, fmt: str | None, mode: str | None, workers: int | None
) -> None:
    """Import offline feedback (phone, e-mail, exported reviews) from CSV or JSONL; lists every rejected line.

    Exit 0 when every line was imported, 1 when some were rejected (the others are stored), 2 when the file
    cannot be read at all (nothing is stored). Use --mode fast for files of many thousand rows. Rows are stored
    in chunks, each with a checkpoint: run the same command again after an interruption and it goes on where it
    stopped, reading nothing twice.
    """
    from listener.imports import ImportFileError, import_rows
    from passaparola.backfill import ImportOutcome
    from passaparola.backfill import import_file as backfill_import
    from passaparola.retraining import live_model_dir

    settings = configure(ctx, config_file)
    now = system_clock()
    file = Path(path)
    try:
        rows = import_rows(file, now, fmt)  # a file that cannot be read stores nothing, not even a database
    except ImportFileError as error:
        fail([str(error)])
    store = open_store(settings)
    outcome = ImportOutcome()
    try:
        with backfill_stops(lambda: f"{outcome.new} new rows stored by this run"):
            pipeline = None
            if settings.analysis.enabled:
                configured = Path(settings.analysis.model_dir) if settings.analysis.model_dir else None
                pipeline = settings.analysis.pipeline(mode, live_model_dir(store, configured))
            backfill_import(store, file, now, pipeline, fmt, workers, rows=rows, outcome=outcome)
    finally:
        store.close()
    for item in outcome.rejected:
        click.echo(f"{path}:{item.line}: rejected: {item.reason}", err=True)
    rate = outcome.read / outcome.seconds if outcome.seconds else 0.0
    click.echo(f"read {outcome.read} mentions in {outcome.seconds:.1f} s ({rate:,.0f}/s)", err=True)
    resumed = f", resumed after line {outcome.resumed_after}" if outcome.resumed_after else ""
    click.echo(
        f"imported {outcome.rows} rows from {path} ({outcome.new} new, "
        f"{outcome.rows - outcome.new} already stored{resumed}); {len(outcome.rejected)} rejected"
    )
    sys.exit(1 if outcome.rejected else 0)
