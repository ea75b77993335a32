"""Reading mentions: analyze, reanalyze and the sentiment group (models, retraining, corrections)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from passaparola.actions import MentionActions, operator
from passaparola.cli.common import (
    _acting,
    _configured_model_dir,
    backfill_stops,
    config_option,
    configure,
    fail,
    load_settings,
    main,
    open_store,
)
from passaparola.daemon import system_clock
from passaparola.retraining import brand_examples, retrain, rollback
from rules.analysis import Analyzer
from rules.sentiment import CHANNELS, LABELS, MODEL_DIR, MODES, ModelError, ReadingModel, SentimentClassifier, Signals
from rules.training import CORPUS, Example, evaluate

mode_option = click.option(
    "--mode", type=click.Choice(MODES), help="accurate or fast (default: analysis.mode of the config)."
)

#: How --help names the shipped defaults: where the package is installed differs from one machine to the next.
SHIPPED_CORPUS = "the shipped corpus, rules/care_corpus/corpus.jsonl"
SHIPPED_MODELS = "the shipped models, rules/models"


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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that read the mentions, one model each (default: the machine's cores; a small store uses one).",
)
@click.pass_context
def reanalyze(ctx: click.Context, config_file: str | None, mode: str | None, workers: int | None) -> None:
    """Recompute every stored mention's derived fields with the current model; corrections are kept.

    Mentions are read in key order and written in chunks, each with a checkpoint: run the same command again
    after an interruption and it goes on where it stopped."""
    from passaparola.backfill import ReanalyzeOutcome
    from passaparola.backfill import reanalyze as backfill_reanalyze

    settings = configure(ctx, config_file)
    store = open_store(settings)
    outcome = ReanalyzeOutcome()
    try:
        with backfill_stops(lambda: f"{outcome.done} mentions done by this run"):
            backfill_reanalyze(store, settings.analysis.pipeline(mode), workers, clock=system_clock, outcome=outcome)
    finally:
        store.close()
    rate = outcome.done / outcome.seconds if outcome.seconds else 0.0
    click.echo(f"read {outcome.done} mentions in {outcome.seconds:.1f} s ({rate:,.0f}/s)", err=True)
    resumed = f" (resumed: {outcome.before} done by the interrupted run)" if outcome.before else ""
    click.echo(
        f"reanalysed {outcome.done} mentions{resumed} with model {outcome.model_version if outcome.done else '-'}: "
        f"{outcome.changed} got a different model label; people's corrections kept"
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
@click.option(
    "--corpus", "corpus", default=str(CORPUS), show_default=SHIPPED_CORPUS, help="The labelled corpus (JSONL)."
)
@click.option("--no-corpus", is_flag=True, help="Leave the shipped corpus out: train on --data/--corrections alone.")
@click.option("--data", "data", multiple=True, metavar="[LANG=]PATH", help="More labelled TSV (repeatable).")
@click.option("--corrections", is_flag=True, help="Also train on the corrections stored in the config's database.")
@click.option("--mode", "modes", type=click.Choice(["both", "fast"]), default="both", show_default=True)
@click.option(
    "--out", default=str(MODEL_DIR), show_default=SHIPPED_MODELS, help="Folder for sentiment-<mode>.npz/.json."
)
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
@click.option("--corpus", "corpus", default=str(CORPUS), show_default=SHIPPED_CORPUS, help="Score its test split.")
@click.option("--data", "data", multiple=True, metavar="[LANG=]PATH", help="Held-out TSV files (research sets).")
@click.option("--mode", "modes", type=click.Choice([*MODES, "both"]), default="both", show_default=True)
@click.option("--model-dir", default=str(MODEL_DIR), show_default=SHIPPED_MODELS)
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
        rows = store.mentions.corrections()
    finally:
        store.close()
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            text = " ".join(row["text"].split())
            handle.write(f"{text}\t{row['label']}\t{row['language']}\n")
    click.echo(f"wrote {len(rows)} corrected mentions to {path}")
