"""`passaparola`: the command line. Builds the object graph from the config and hands it to the daemon."""

from __future__ import annotations

import json
import logging
import secrets
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import SecretStr

from listener.demo import DemoSource
from listener.model import PLATFORMS, Conversation
from notifiers.alert import Alert, Notifier
from notifiers.apprise_notifier import AppriseNotifier
from notifiers.log import LogNotifier, printable
from passaparola import config as configuration
from passaparola.actions import MentionActions, PeopleActions, Refusal, operator
from passaparola.actions.listing import queue
from passaparola.config import ConfigError, Settings, SourceSpec, UserSettings
from passaparola.daemon import Daemon, system_clock
from passaparola.drill import SCENARIOS, DrillError, run_drill
from passaparola.exports import (
    FORMATS,
    TESTIMONIAL_COLUMNS,
    ExportError,
    advocate_export,
    render,
    testimonial_rows,
    write_atomic,
)
from passaparola.pipeline import score_advocates
from passaparola.retraining import brand_examples, live_model_dir, retrain, rollback
from rules.advocates import TIERS, score_person, suggest_offer
from rules.analysis import Analyzer
from rules.analysis import signals as reading_signals
from rules.engagement import ReplyContext, holding_reply, lint_reply, verdict
from rules.sentiment import CHANNELS, LABELS, MODEL_DIR, MODES, ModelError, ReadingModel, SentimentClassifier, Signals
from rules.training import CORPUS, Example, evaluate
from rules.triage import figures
from storage.board import InboxFilter
from storage.people import PeopleError
from storage.store import StorageError, Store

if TYPE_CHECKING:
    from passaparola.web import WebServer

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
    web = start_web(settings) if settings.web.enabled and not once else None
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


def start_web(settings: Settings) -> WebServer:
    """The web app in a thread, on its own connection to the database (its modules load only then: a daemon
    without the web app does not carry them)."""
    from passaparola.web import WebServer, create_app

    try:
        shared = Store.open(settings.storage.path, settings.storage.busy_timeout_seconds, shared=True)
    except StorageError as error:
        fail([str(error)])
    server = WebServer(create_app(settings, shared, system_clock), settings.web.host, settings.web.port)
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
        web = start_web(settings) if web_port is not None else None
        if web is not None:
            click.echo(f"dashboard: http://127.0.0.1:{web.port}/ (user demo, password {password}, for this run only)")
        try:
            with stop_on_signals() as stop:
                daemon = build_daemon(settings, store)
                daemon.run(stop, duration=duration or None)
            if web is not None:
                web.stop()
            counts = store.counts()
            loads = store.workloads()
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
        overall = figures(store.conversations_between(now - timedelta(days=7), now), now).get("all", {}).get("all")
        if overall:
            mood = "-" if overall.satisfaction is None else f"{overall.satisfaction:+.2f}"
            click.echo(
                f"last 7 days: first response median {_minutes(overall.median_seconds)}, "
                f"p90 {_minutes(overall.p90_seconds)}, SLA met {_share(overall.compliance)}, "
                f"unanswered {_share(overall.unanswered_share)} ({overall.breached_open} past due), "
                f"satisfaction after our answers {mood}"
            )
        loads = store.workloads()
        for member in settings.triage.members:
            click.echo(f"member {member.name}: {loads.get(member.name, 0)} open of {member.capacity}")
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
            beat = store.heartbeat()
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


@main.group()
def alerts() -> None:
    """Work with alert delivery."""


@alerts.command("test")
@config_option
@click.option("--route", required=True, help="The route (apprise tag) to send a test alert to.")
@click.pass_context
def alerts_test(ctx: click.Context, config_file: str | None, route: str) -> None:
    """Send a test alert to a route and report, per URL, whether it was delivered (exit 1 if any failed)."""
    settings = configure(ctx, config_file)
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


# -- reading mentions: analyze, reanalyze, sentiment models and corrections -------------------------------

mode_option = click.option(
    "--mode", type=click.Choice(MODES), help="accurate or fast (default: analysis.mode of the config)."
)


def _input_items(stream: Iterable[bytes]) -> Iterator[tuple[Any, str | None, Signals, str]]:
    """(id, text or None, signals, problem) per input line: JSONL objects with id and text (and optionally the
    channel and the stars), or plain text lines."""
    for number, raw in enumerate(stream, 1):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            yield number, line, Signals(), ""
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            yield (
                number,
                None,
                Signals(),
                f"line {number}: not valid JSON ({error.msg}); send one object or one text a line",
            )
            continue
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            yield (
                number,
                None,
                Signals(),
                f'line {number}: the object has no string "text"; send {{"id": ..., "text": ...}}',
            )
            continue
        channel, stars = item.get("channel", ""), item.get("stars")
        if channel and channel not in CHANNELS:
            yield (
                item.get("id", number),
                None,
                Signals(),
                f"line {number}: channel {channel!r} is not one of {', '.join(CHANNELS)}",
            )
            continue
        if stars is not None and stars not in (1, 2, 3, 4, 5):
            yield (
                item.get("id", number),
                None,
                Signals(),
                f"line {number}: stars {stars!r} is not a whole number from 1 to 5",
            )
            continue
        yield item.get("id", number), text, Signals(channel, stars), ""


@main.command()
@config_option
@mode_option
@click.option("--batch", default=64, show_default=True, help="Mentions read per batch.")
@click.pass_context
def analyze(ctx: click.Context, config_file: str | None, mode: str | None, batch: int) -> None:
    """Read text lines or JSONL ({"id", "text", "channel"?, "stars"?}) on stdin; one JSON result a line on stdout."""
    settings = configure(ctx, config_file)
    analyzer = Analyzer(settings.analysis.pipeline(mode))
    pending: list[tuple[Any, str, Signals]] = []

    def flush() -> None:
        results = analyzer.analyze([t for _, t, _ in pending], [s for _, _, s in pending])
        for (ident, _, _), result in zip(pending, results, strict=True):
            click.echo(json.dumps({"id": ident, **result}, ensure_ascii=False))
        pending.clear()

    try:
        for ident, text, signals, problem in _input_items(sys.stdin.buffer):
            if text is None:
                flush()
                click.echo(json.dumps({"id": ident, "error": problem}, ensure_ascii=False))
                continue
            pending.append((ident, text, signals))
            if len(pending) >= batch:
                flush()
        flush()
    except ModelError as error:
        fail([str(error)])


@main.command()
@config_option
@mode_option
@click.pass_context
def reanalyze(ctx: click.Context, config_file: str | None, mode: str | None) -> None:
    """Recompute every stored mention's derived fields with the current model; corrections are kept."""
    settings = configure(ctx, config_file)
    store = open_store(settings)
    analyzer = Analyzer(settings.analysis.pipeline(mode))
    done = changed = 0
    last = ""
    try:
        while page := store.mention_texts(after_key=last):
            results = analyzer.analyze([row[1] for row in page], [reading_signals(*row[2:]) for row in page])
            tags = {row[0]: r for row, r in zip(page, results, strict=True)}
            changed += store.replace_tags(tags, system_clock())
            done += len(page)
            last = page[-1][0]
    except ModelError as error:
        fail([str(error)])
    finally:
        store.close()
    click.echo(
        f"reanalysed {done} mentions with model {analyzer.model_version if done else '-'}: "
        f"{changed} got a different model label; people's corrections kept"
    )


@main.group()
def sentiment() -> None:
    """Train, evaluate and correct the sentiment model."""


def _data_files(specs: Iterable[str]) -> list[tuple[Path, str | None]]:
    """``PATH`` or ``LANG=PATH``; without LANG the language comes from the file name's first two letters."""
    found = []
    for spec in specs:
        lang, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if not Path(path).is_file():
            fail([f"--data {spec}: no such file; give a text<TAB>label[<TAB>language] file"])
        found.append((Path(path), lang or None))
    return found


@sentiment.command("train")
@config_option
@click.option("--corpus", "corpus", default=str(CORPUS), show_default=True, help="The labelled corpus (JSONL).")
@click.option("--no-corpus", is_flag=True, help="Leave the shipped corpus out: train on --data/--corrections alone.")
@click.option("--data", "data", multiple=True, metavar="[LANG=]PATH", help="More labelled TSV (repeatable).")
@click.option("--corrections", is_flag=True, help="Also train on the corrections stored in the config's database.")
@click.option("--mode", "modes", type=click.Choice(["both", "fast"]), default="both", show_default=True)
@click.option("--out", default=str(MODEL_DIR), show_default=True, help="Folder for sentiment-<mode>.npz/.json.")
@click.option("--seed", default=13, show_default=True)
@click.option("--cache", metavar="PATH", help="Keep text embeddings here between runs (accurate mode).")
@click.option("--version", "version", default="", help="Model version to record (default: derived from data).")
@click.option("--terms", default="", help="The terms of the training data, recorded in the model card.")
def sentiment_train(
    config_file: str | None,
    corpus: str,
    no_corpus: bool,
    data: tuple[str, ...],
    corrections: bool,
    modes: str,
    out: str,
    seed: int,
    cache: str | None,
    version: str,
    terms: str,
) -> None:
    """Train the reading model (seeded): fitted on the train rows, chosen on the dev rows, never on test.

    TSV files and corrections are split by the corpus's text hash, so a fifth of them stays held out.
    """
    from rules.training import read_corpus, read_examples, train

    examples: list[Example] = []
    try:
        if not no_corpus:
            examples += read_corpus(Path(corpus))
        for path, lang in _data_files(data):
            examples += read_examples(path, lang)
    except ModelError as error:
        fail([str(error)])
    if corrections:
        store = open_store(load_settings(config_file))
        try:
            examples += brand_examples(store)
        finally:
            store.close()
    if not examples:
        fail(["nothing to train on: keep the corpus, or give --data FILE and/or --corrections"])
    if len(examples) < 300:
        click.echo(f"warning: only {len(examples)} examples; expect a weak model below a few hundred", err=True)
    click.echo(f"training on {sum(e.split == 'train' for e in examples)} examples (seed {seed})...", err=True)
    try:
        models = train(
            examples,
            seed=seed,
            version=version,
            cache=Path(cache) if cache else None,
            progress=lambda done, total: click.echo(f"  embedded {done}/{total}", err=True),
            with_accurate=modes == "both",
        )
    except ModelError as error:
        fail([str(error)])
    shipped = "rules/care_corpus/corpus.jsonl (the shipped corpus)"
    sources = ([] if no_corpus else [shipped if Path(corpus) == CORPUS else corpus]) + [
        str(p) for p, _ in _data_files(data)
    ]
    for model in models:
        if model is None:
            continue
        model.card["data"] = sources + (["corrections"] if corrections else [])
        model.card["terms"] = terms or "the terms of the data it was trained on (see data)"
        target = Path(out) / f"sentiment-{model.mode}.npz"
        model.save(target)
        heads = "; ".join(f"{task} {', '.join(names)}" for task, names in model.heads.heads.items())
        click.echo(f"wrote {target} (version {model.version}; heads: {heads})")


@sentiment.command("eval")
@click.option("--corpus", "corpus", default=str(CORPUS), show_default=True, help="Score its test split.")
@click.option("--data", "data", multiple=True, metavar="[LANG=]PATH", help="Held-out TSV files (research sets).")
@click.option("--mode", "modes", type=click.Choice([*MODES, "both"]), default="both", show_default=True)
@click.option("--model-dir", default=str(MODEL_DIR), show_default=True)
@click.option("--json", "json_out", metavar="PATH", help="Also write the scores here.")
@click.option("--update-card", is_flag=True, help="Write the table into the models' cards and MODEL_CARD.md.")
def sentiment_eval(
    corpus: str, data: tuple[str, ...], modes: str, model_dir: str, json_out: str | None, update_card: bool
) -> None:
    """Per language and mode: the customer-care test split (accuracy, macro-F1, negative recall, needs-answer
    accuracy) and each held-out file, with VADER scored in the same run."""
    from rules.training import read_corpus, read_examples

    held_out = [e for e in read_corpus(Path(corpus)) if e.split == "test"]
    sets = [
        ("care test", [e for e in held_out if e.sector != "general"]),
        ("general test", [e for e in held_out if e.sector == "general"]),
    ]
    sets += [(path.name, read_examples(path, lang)) for path, lang in _data_files(data)]
    report: dict[str, Any] = {"sets": [name for name, _ in sets], "modes": {}}
    rows: list[tuple[str, str, str, dict[str, Any]]] = []
    for mode in MODES if modes == "both" else (modes,):
        try:
            classifier = SentimentClassifier.shipped(mode, threads=2, model_dir=Path(model_dir))  # type: ignore[arg-type]
        except ModelError as error:
            fail([str(error)])
        report["modes"][mode] = {"version": classifier.model.version, "scores": {}}
        for name, examples in sets:
            scored = evaluate(classifier, examples, with_vader=mode == MODES[0] or modes != "both")
            report["modes"][mode]["scores"][name] = scored
            for lang, pair in scored.items():
                rows.append((name, lang, mode, pair["model"]))
                if "vader" in pair:
                    rows.append((name, lang, "VADER", pair["vader"]))
    table = sentiment_table(rows)
    click.echo(table)
    if update_card:
        for mode, found in report["modes"].items():
            path = Path(model_dir) / f"sentiment-{mode}.npz"
            model = ReadingModel.load(path)
            model.card["evaluation"] = found["scores"]
            model.save(path)
        card = Path(model_dir) / "MODEL_CARD.md"
        if card.is_file():
            text = card.read_text(encoding="utf-8")
            begin, end = "<!-- scores:begin -->", "<!-- scores:end -->"
            if begin in text and end in text:
                head, _, rest = text.partition(begin)
                card.write_text(f"{head}{begin}\n{table}\n{end}{rest.partition(end)[2]}", encoding="utf-8")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_out}")


def sentiment_table(rows: Iterable[tuple[str, str, str, dict[str, Any]]]) -> str:
    """The evaluation as a Markdown table, one row per data set, language and model."""

    def cell(scores: dict[str, Any], name: str) -> str:
        return f"{scores[name]:.1f}" if name in scores else "–"

    lines = [
        "| data | language | model | accuracy | macro-F1 | macro-recall | negative recall | needs-answer | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, lang, model, s in rows:
        lines.append(
            f"| {name} | {lang} | {model} | {cell(s, 'accuracy')} | {cell(s, 'macro_f1')} | {cell(s, 'macro_recall')} "
            f"| {cell(s, 'negative_recall')} | {cell(s, 'needs_answer_accuracy')} | {int(s.get('n', 0))} |"
        )
    return "\n".join(lines)


@sentiment.command("retrain")
@config_option
def sentiment_retrain(config_file: str | None) -> None:
    """Build a candidate on the corpus plus your corrections; it goes live only if not worse (see history)."""
    settings = load_settings(config_file)
    store = open_store(settings)
    try:
        outcome = retrain(
            store,
            Path(settings.storage.path),
            _configured_model_dir(settings),
            system_clock(),
            settings.analysis.threads,
        )
    except ModelError as error:
        fail([str(error)])
    finally:
        store.close()
    verdict_text = "now live" if outcome.swapped else "rejected, the live model stays"
    click.echo(f"candidate {outcome.version}: {verdict_text} ({outcome.reason})")
    for name, scores in (("live", outcome.live), ("candidate", outcome.candidate)):
        for split in ("corpus_test", "brand_held_out"):
            if split in scores:
                s = scores[split]
                click.echo(
                    f"  {name:<9} {split:<15} accuracy {s['accuracy']:.1f}, negative recall "
                    f"{s['negative_recall']:.1f} (n {s['n']})"
                )


@sentiment.command("rollback")
@config_option
def sentiment_rollback(config_file: str | None) -> None:
    """Go back to the model that was live before the last swap."""
    store = open_store(load_settings(config_file))
    try:
        undone = rollback(store, system_clock())
    except ModelError as error:
        fail([str(error)])
    finally:
        store.close()
    click.echo(f"rolled back {undone['to_version']}: {undone['from_version']} is live again")


@sentiment.command("history")
@config_option
def sentiment_history(config_file: str | None) -> None:
    """Every retraining attempt: swapped in, rejected or rolled back, with both scores."""
    store = open_store(load_settings(config_file))
    try:
        rows = store.models.history()
    finally:
        store.close()
    if not rows:
        click.echo("no retraining yet: the shipped (or configured) model is live")
    for row in rows:
        click.echo(f"{row['at']}  {row['action']:<8} {row['from_version']} -> {row['to_version']}: {row['reason']}")


def _configured_model_dir(settings: Settings) -> Path | None:
    return Path(settings.analysis.model_dir) if settings.analysis.model_dir else None


@sentiment.command("correct")
@config_option
@click.argument("mention")
@click.argument("label", type=click.Choice(LABELS))
@click.option("--by", default="cli", show_default=True, help="Who corrects (kept with the label).")
def sentiment_correct(config_file: str | None, mention: str, label: str, by: str) -> None:
    """Set MENTION's sentiment (its key, e.g. x:1800...); it wins over the model and survives reanalysis."""
    with _acting(config_file) as (settings, store):
        MentionActions(settings, store).correct(operator(by), mention, label, system_clock())
    click.echo(f"{mention}: sentiment {label} (corrected by {by})")


@sentiment.command("export")
@config_option
@click.argument("path", type=click.Path(dir_okay=False))
def sentiment_export(config_file: str | None, path: str) -> None:
    """Write your team's corrections as text<TAB>label<TAB>language, the format `sentiment train` reads."""
    store = open_store(load_settings(config_file))
    try:
        rows = store.corrections()
    finally:
        store.close()
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            text = " ".join(row["text"].split())
            handle.write(f"{text}\t{row['label']}\t{row['language']}\n")
    click.echo(f"wrote {len(rows)} corrected mentions to {path}")


@main.command("import")
@config_option
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file's extension.")
@click.option("--mode", type=click.Choice(MODES), default="fast", show_default=True, help="Analysis mode for the rows.")
@click.pass_context
def import_file(ctx: click.Context, config_file: str | None, path: str, fmt: str | None, mode: str | None) -> None:
    """Import offline feedback (phone, e-mail, exported reviews) from CSV or JSONL; lists every rejected line.

    Exit 0 when every line was imported, 1 when some were rejected (the others are stored), 2 when the file
    cannot be read at all (nothing is stored). Use --mode fast for files of many thousand rows.
    """
    from listener.imports import ImportFileError, read_import
    from listener.model import Poll
    from passaparola.pipeline import enrich

    settings = configure(ctx, config_file)
    now = system_clock()
    try:
        mentions, rejected = read_import(Path(path), now, fmt)
    except ImportFileError as error:
        fail([str(error)])
    store = open_store(settings)
    try:
        fresh = [m for m in mentions if m.key not in store.known(m.key for m in mentions)]
        tagged = {m.key: m for m in enrich(fresh, build_taggers(settings, store, mode))}
        poll = Poll(mentions=tuple(tagged.get(m.key, m) for m in mentions), cursor={"file": Path(path).name})
        result = store.save_poll("import", "import", poll, now)
    except ModelError as error:
        fail([str(error)])
    finally:
        store.close()
    for item in rejected:
        click.echo(f"{path}:{item.line}: rejected: {item.reason}", err=True)
    click.echo(
        f"imported {len(mentions)} rows from {path} ({result.new_mentions} new, "
        f"{len(mentions) - result.new_mentions} already stored); {len(rejected)} rejected"
    )
    sys.exit(1 if rejected else 0)


# -- triage: the queue, assignment, answers, figures, rules of engagement ------------------------------------


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


def _known_member(settings: Settings, name: str) -> None:
    names = [m.name for m in settings.triage.members]
    if name not in names:
        fail([f"no member {name!r} in [[triage.members]]; known: {', '.join(names) or 'none configured'}"])


@main.group("triage")
def triage_group() -> None:
    """Work the queue: who has what, mark answers, people away, first-response figures."""


@triage_group.command("queue")
@config_option
@click.option("--member", help="Only this person's items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def triage_queue(config_file: str | None, member: str | None, as_json: bool) -> None:
    """Open mentions, most urgent first, with time left, priority, team and assignee (the inbox's rows)."""
    settings = load_settings(config_file)
    if member is not None:
        _known_member(settings, member)
    store = open_store(settings)
    now = system_clock()
    try:
        rows = list(queue(store, now, InboxFilter(assignee=member or "")))
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        left = row["minutes_left"]
        when = "?" if left is None else f"{left:+d} min" if left < 0 else f"{left} min left"
        text = " ".join(row["text"].split())[:80]
        shown = f"@{row['author']['handle']}" if row["author"]["handle"] else row["author"]["name"]
        click.echo(
            f"{row['key']}  {when}  {row['priority']}  {row['team'] or '-'}  {row['assignee'] or 'unassigned'}  "
            f"{printable(shown)}: {printable(repr(text))}"
        )
    if not as_json:
        click.echo(f"{len(rows)} open")


@triage_group.command("assign")
@config_option
@click.argument("key")
@click.argument("member")
def triage_assign(config_file: str | None, key: str, member: str) -> None:
    """Give mention KEY to MEMBER by hand."""
    with _acting(config_file) as (settings, store):
        MentionActions(settings, store).assign(operator("cli"), key, member, system_clock())
    click.echo(f"{key}: assigned to {member}")


@triage_group.command("answered")
@config_option
@click.argument("key")
@click.option("--by", "by", required=True, help="Who answered (a member's name).")
@click.option(
    "--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]), help="When (default now)."
)
def triage_answered(config_file: str | None, key: str, by: str, at: datetime | None) -> None:
    """Mark KEY answered, for channels with no reply signal (imports, intake, a phone call back)."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).answered(operator(by), key, system_clock(), at=at)
    click.echo(f"{key}: answered by {c.answered_by or by} after {_minutes(c.response_seconds)}")


@triage_group.command("ignore")
@config_option
@click.argument("key")
@click.option("--reason", required=True, help="Why it needs no answer (spam, not about us...).")
@click.option("--by", "by", default="cli", show_default=True)
def triage_ignore(config_file: str | None, key: str, reason: str, by: str) -> None:
    """Close KEY without an answer, with the reason."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).ignore(operator(by), key, reason, system_clock())
    click.echo(f"{key}: ignored ({printable(c.state_reason)})")


def _set_away(config_file: str | None, member: str, away: bool) -> None:
    settings = load_settings(config_file)
    _known_member(settings, member)
    store = open_store(settings)
    try:
        store.set_away(member, away, "cli", system_clock())
    finally:
        store.close()
    click.echo(f"{member} is {'away: their open items are handed on' if away else 'back'}")


@triage_group.command("away")
@config_option
@click.argument("member")
def triage_away(config_file: str | None, member: str) -> None:
    """MEMBER is away: gets no new work; open items go to others at the next rules run."""
    _set_away(config_file, member, True)


@triage_group.command("back")
@config_option
@click.argument("member")
def triage_back(config_file: str | None, member: str) -> None:
    """MEMBER is back (within their shifts)."""
    _set_away(config_file, member, False)


@triage_group.command("figures")
@config_option
@click.option("--days", default=7, show_default=True, help="Mentions published in the last DAYS days.")
@click.option("--json", "as_json", is_flag=True)
def triage_figures(config_file: str | None, days: int, as_json: bool) -> None:
    """First-response time (median, p90), SLA compliance, open items, implicit satisfaction, per group."""
    settings = load_settings(config_file)
    store = open_store(settings)
    now = system_clock()
    try:
        table = figures(store.conversations_between(now - timedelta(days=days), now), now)
        loads = store.workloads()
    finally:
        store.close()
    if as_json:
        out = {
            dim: {k: {**asdict(f), "compliance": f.compliance} for k, f in rows.items()} for dim, rows in table.items()
        }
        click.echo(json.dumps({"days": days, "figures": out, "workloads": loads}, indent=2))
        return
    click.echo(f"last {days} days: group, needing answer, answered, open, median, p90, SLA met, satisfaction")
    for dimension in ("all", "channel", "team", "member"):
        for name, f in table.get(dimension, {}).items():
            mood = "-" if f.satisfaction is None else f"{f.satisfaction:+.2f} ({f.follow_ups} follow-ups)"
            click.echo(
                f"{dimension} {name}: {f.needing_answer}, {f.answered}, {f.open}, {_minutes(f.median_seconds)}, "
                f"{_minutes(f.p90_seconds)}, {_share(f.compliance)}, {mood}"
            )
    for member in settings.triage.members:
        click.echo(f"workload {member.name}: {loads.get(member.name, 0)} open of {member.capacity}")


def _recent_median(store: Store, channel: str, now: datetime) -> float | None:
    """The median first-response time on ``channel`` over the last day, else the last week: what we can promise."""
    for days in (1, 7):
        group = figures(store.conversations_between(now - timedelta(days=days), now), now).get("channel", {})
        if channel in group and group[channel].median_seconds is not None:
            return group[channel].median_seconds
    return None


def _draft_text(draft: str) -> str:
    text = sys.stdin.read() if draft == "-" else draft
    if not text.strip():
        fail(["the draft is empty; pass the reply's text, or - to read it from stdin"])
    return text


@main.command("lint-reply")
@config_option
@click.argument("draft", required=False, default="")
@click.option("--mention", "key", help="The mention it answers: gives channel, team, complaint, link.")
@click.option("--channel", type=click.Choice(PLATFORMS), help="The channel (default: the mention's).")
@click.option("--member", help="Who signs it (their configured signature is required at the end).")
@click.option("--team", default=None, help="The team (default: the mention's).")
@click.option("--complaint", is_flag=True, help="It answers a complaint (default: the mention is negative).")
@click.option("--holding", is_flag=True, help="Print a holding reply for a busy moment instead of linting.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable findings.")
def lint_reply_command(
    config_file: str | None,
    draft: str,
    key: str | None,
    channel: str | None,
    member: str | None,
    team: str | None,
    complaint: bool,
    holding: bool,
    as_json: bool,
) -> None:
    """Review DRAFT (or - for stdin) against the house rules: exit 0 ok, 1 blocked; warnings do not block."""
    settings = load_settings(config_file)
    c: Conversation | None = None
    median: float | None = None
    if key or holding:
        with _acting(config_file) as (_, store):
            c = MentionActions(settings, store).known(key) if key else None
            median = _recent_median(store, channel or (c.mention.platform if c else ""), system_clock())
    if holding:
        language = (c.mention.tags.get("language") if c else None) or settings.analysis.languages[0]
        handle = c.mention.author.handle if c else "name"
        reply = holding_reply(handle, str(language), median, settings.engagement)
        click.echo(json.dumps({"holding_reply": reply}, ensure_ascii=False) if as_json else reply)
        return
    if not channel and c is None:
        fail(["say where the reply goes: --channel x (or --mention KEY)"])
    if member:
        _known_member(settings, member)
    signature = next((m.signature for m in settings.triage.members if m.name == member), "")
    context = ReplyContext(
        channel=channel or (c.mention.platform if c else ""),
        team=team if team is not None else (c.team if c else ""),
        complaint=complaint or (c is not None and c.mention.tags.get("sentiment") == "negative"),
        signature=signature,
        handle=c.mention.author.handle if c else "",
        url=c.mention.url if c else "",
    )
    findings = lint_reply(_draft_text(draft), context, settings.engagement)
    result = verdict(findings)
    if as_json:
        click.echo(json.dumps({"verdict": result, "findings": [asdict(f) for f in findings]}, ensure_ascii=False))
    else:
        for f in findings:
            click.echo(f"{f.level}: {f.message} [{f.code}]")
        click.echo(f"verdict: {result}")
    sys.exit(1 if result == "block" else 0)


@alerts.command("ack")
@config_option
@click.argument("key")
@click.option("--by", "by", required=True, help="Who takes charge.")
def alerts_ack(config_file: str | None, key: str, by: str) -> None:
    """Acknowledge a breach (KEY: the mention, or the alert's key): its escalation ladder stops."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).acknowledge(operator(by), key, system_clock())
    click.echo(f"{c.mention.key}: acknowledged by {c.acknowledged_by}; no further escalation")


# -- advocates: people, scores, offers, exports, testimonials, erasure ---------------------------------------


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


def _rescored(settings: Settings, store: Store) -> datetime:
    """Scores as of now (VIP promotions found here are queued for the daemon to send, never lost)."""
    now = system_clock()
    score_advocates(settings.advocates, store, now)
    return now


def _write_or_print(text: str, fmt: str, out: str) -> None:
    if out == "-":
        click.echo(text, nl=False)
    else:
        write_atomic(Path(out), text, fmt)


@main.group("advocates")
def advocates_group() -> None:
    """People who speak well of the brand: scores, tiers, offers and exports."""


@advocates_group.command("list")
@config_option
@click.option("--tier", "tiers", multiple=True, type=click.Choice(TIERS), help="Only these tiers (repeatable).")
@click.option("--limit", default=20, show_default=True)
def advocates_list(config_file: str | None, tiers: tuple[str, ...], limit: int) -> None:
    """The leaderboard: best score first, with tier, handles and what they praised."""
    with _people_store(config_file) as (settings, store):
        _rescored(settings, store)
        leaders = store.people.leaders(tiers=tiers, limit=limit)
    for leader in leaders:
        p = leader.person
        click.echo(
            f"{p.id:>6}  {leader.score:7.2f}  {leader.tier or '-':<8}  {printable(p.name)}  "
            f"{' '.join('@' + printable(h) for h in p.handles)}  [{', '.join(p.channels)}]"
            f"{'  opted out' if p.opted_out else ''}"
        )
    click.echo(f"{len(leaders)} people")


@advocates_group.command("explain")
@config_option
@click.argument("person")
def advocates_explain(config_file: str | None, person: str) -> None:
    """Every mention that makes PERSON's score (id, author key or @handle), with its share."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        person_id = store.people.resolve(person)
        who = store.people.person(person_id)
        since = now - timedelta(days=settings.advocates.window_days)
        score = score_person(person_id, store.people.said(since, person_id), settings.advocates, now)
    click.echo(f"person {who.id}: {printable(who.name)} ({', '.join('@' + printable(h) for h in who.handles)})")
    click.echo(
        f"score {score.score:.2f} = sum of sign x strength x reach x decay "
        f"(half-life {settings.advocates.half_life_days:g} days); tier {score.tier or 'none'}"
    )
    for c in score.contributions:
        s = c.said
        sign = "+" if s.sentiment == "positive" else "-"
        share = f"{c.value / score.score:6.1%}" if score.score and not c.excluded else "     -"
        reason = f"  not counted: {c.excluded}" if c.excluded else ""
        click.echo(
            f"  {c.value:+7.3f} {share}  {s.published_at:%Y-%m-%d}  {s.platform:<8} {sign}{s.strength:.2f}"
            f" x{c.reach_factor:.2f} x{c.decay:.2f}  {s.key}  {printable(' '.join(s.text.split()))[:70]!r}{reason}"
        )
    if not score.contributions:
        click.echo("  no positive or negative mention in the window")


@advocates_group.command("suggest")
@config_option
def advocates_suggest(config_file: str | None) -> None:
    """Authors on different platforms whose handles match: probably one person; link them to merge."""
    with _people_store(config_file) as (_settings, store):
        store.people.sync(system_clock())
        found = store.people.suggestions()
    for s in found:
        click.echo(
            f"@{printable(s.handle)}: people {', '.join(map(str, s.people))} ({', '.join(s.authors)}); "
            f"link with: passaparola advocates link {s.people[0]} {s.authors[-1]}"
        )
    click.echo(f"{len(found)} suggestions")


@advocates_group.command("link")
@config_option
@click.argument("person")
@click.argument("author")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_link(config_file: str | None, person: str, author: str, by: str) -> None:
    """Make AUTHOR (platform:id) one of PERSON's accounts; scores add up from the next run."""
    with _people_store(config_file) as (settings, store):
        person_id = PeopleActions(store).link(operator(by), person, author, system_clock())
        _rescored(settings, store)
    click.echo(f"{author} is now person {person_id}")


@advocates_group.command("unlink")
@config_option
@click.argument("author")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_unlink(config_file: str | None, author: str, by: str) -> None:
    """Give AUTHOR a person of their own again."""
    with _people_store(config_file) as (settings, store):
        person_id = PeopleActions(store).unlink(operator(by), author, system_clock())
        _rescored(settings, store)
    click.echo(f"{author} is now person {person_id}")


@advocates_group.command("opt-out")
@config_option
@click.argument("person")
@click.option("--undo", is_flag=True, help="They agreed to offers again.")
def advocates_opt_out(config_file: str | None, person: str, undo: bool) -> None:
    """PERSON gets no offers (exports show offer_consent false)."""
    with _people_store(config_file) as (_settings, store):
        person_id = PeopleActions(store).opt_out(operator("cli"), person, not undo, system_clock())
    click.echo(f"person {person_id}: {'may get offers again' if undo else 'opted out of offers'}")


@advocates_group.command("offer")
@config_option
@click.argument("person")
@click.option("--send", is_flag=True, help="Record that the suggested offer was sent.")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_offer(config_file: str | None, person: str, send: bool, by: str) -> None:
    """The offer for PERSON now (rendered from the configured templates) and the offers they had."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        person_id = store.people.resolve(person)
        leader = next(iter(store.people.leaders(person_id=person_id)), None)
        who = store.people.person(person_id)
        tier, score, praised = (leader.tier, leader.score, leader.praised) if leader else ("", 0.0, ())
        suggestion = suggest_offer(who, tier, score, praised, settings.advocates, now)
        if send:
            if not suggestion.text:
                fail([f"person {person_id}: no offer to send ({suggestion.reason})"])
            store.people.record_offer(person_id, suggestion.offer, suggestion.text, by, now)
        history = store.people.offers(person_id)
    if suggestion.text:
        click.echo(f"{'sent' if send else 'suggested'} ({suggestion.offer}): {printable(suggestion.text)}")
    else:
        click.echo(f"no offer now: {suggestion.reason}")
    for o in history:
        used = f"used {o.used_at:%Y-%m-%d}" if o.used_at else "not used yet"
        click.echo(f"  offer {o.id} {o.offer} sent {o.sent_at:%Y-%m-%d} by {o.sent_by}; {used}")


@advocates_group.command("offer-used")
@config_option
@click.argument("offer_id", type=int)
def advocates_offer_used(config_file: str | None, offer_id: int) -> None:
    """Record that offer OFFER_ID was redeemed."""
    with _people_store(config_file) as (_settings, store):
        store.people.offer_used(offer_id, system_clock())
    click.echo(f"offer {offer_id}: used")


export_options = [
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True),
    click.option(
        "--out", default="-", show_default=True, help="File to write (written whole, then renamed); '-': stdout."
    ),
    click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Praise since this day (UTC)."),
    click.option("--topic", default="", help="Only people (mentions) about this topic."),
    click.option("--channel", type=click.Choice(PLATFORMS), help="Only this channel."),
]


def _export_options(command: Any) -> Any:
    for option in reversed(export_options):
        command = option(command)
    return command


def _utc_day(day: datetime | None) -> datetime | None:
    return day.replace(tzinfo=UTC) if day else None


@advocates_group.command("export")
@config_option
@_export_options
@click.option("--tier", "tiers", multiple=True, type=click.Choice(TIERS), help="Only these tiers (repeatable).")
@click.option("--min-score", type=float, help="Only people scoring at least this.")
def advocates_export(
    config_file: str | None,
    fmt: str,
    out: str,
    since: datetime | None,
    topic: str,
    channel: str | None,
    tiers: tuple[str, ...],
    min_score: float | None,
) -> None:
    """One row per person: handles, channels, score, tier, last praise, suggested offer, consent."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        text, people = advocate_export(
            store, settings.advocates, now, fmt, tiers, min_score, _utc_day(since), topic, channel or ""
        )
        _write_or_print(text, fmt, out)
    if out != "-":
        click.echo(f"{people} people written to {out}")


@main.group("testimonials")
def testimonials_group() -> None:
    """The strongest positive mentions, for the brand's own pages, with the author's agreement."""


@testimonials_group.command("export")
@config_option
@_export_options
@click.option("--agreed-only", is_flag=True, help="Only mentions whose author agreed to their reuse.")
@click.option("--limit", default=50, show_default=True)
def testimonials_export(
    config_file: str | None,
    fmt: str,
    out: str,
    since: datetime | None,
    topic: str,
    channel: str | None,
    agreed_only: bool,
    limit: int,
) -> None:
    """Positive mentions ranked by strength, reach and recency, with author, link and reuse agreement."""
    with _people_store(config_file) as (settings, store):
        now = system_clock()
        start = _utc_day(since) or now - timedelta(days=settings.advocates.window_days)
        rows = testimonial_rows(store, settings.advocates, now, start, topic, channel or "", agreed_only, limit)
        _write_or_print(render(rows, TESTIMONIAL_COLUMNS, fmt), fmt, out)
    if out != "-":
        click.echo(f"{len(rows)} testimonials written to {out}")


@testimonials_group.command("agree")
@config_option
@click.argument("mention")
@click.option("--revoke", is_flag=True, help="The author withdrew their agreement.")
@click.option("--by", "by", default="cli", show_default=True)
@click.option("--note", default="", help="How the agreement was given (a DM, an e-mail...).")
def testimonials_agree(config_file: str | None, mention: str, revoke: bool, by: str, note: str) -> None:
    """Record that the author of MENTION agreed (or no longer agrees) to its reuse."""
    with _people_store(config_file) as (_settings, store):
        store.people.agree_testimonial(mention, not revoke, by, system_clock(), note)
    click.echo(f"{mention}: reuse {'not agreed' if revoke else 'agreed'}")


@main.command("erase")
@config_option
@click.argument("who")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
def erase(config_file: str | None, who: str, yes: bool) -> None:
    """Remove a person (id, author key or @handle) everywhere, and never ingest or target them again."""
    with _people_store(config_file) as (_settings, store):
        people = PeopleActions(store)
        if not yes:
            person_id, accounts = people.erasure(operator("cli"), who, system_clock())
            removed = f"person {person_id} ({', '.join(accounts)})"
            fail([f"erase would remove {removed} and all they said; add --yes to confirm"])
        erased = people.erase(operator("cli"), who, system_clock())
    done = ", ".join(f"{n} {table}" for table, n in erased.removed.items() if n)
    click.echo(f"person {erased.person_id} erased ({done or 'nothing stored'}); their accounts are suppressed")
