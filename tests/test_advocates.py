"""Advocates with a fixed clock: the score ranks real fans above one-off big accounts, resists spam, bursts
and the brand's own posts, and explains itself; tiers, VIP alerts and priority; sandboxed offers; exports safe
in a spreadsheet; testimonials with agreement; erasure everywhere and for good; retention."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener import Author, Mention, Poll
from listener.model import Person
from passaparola.cli import main
from passaparola.exports import ADVOCATE_COLUMNS, ExportError, advocate_rows, render, write_atomic
from passaparola.pipeline import score_advocates, triage
from rules import NegativeMention
from rules.advocates import AdvocateSettings, OfferTemplate, offer_problems, render_offer, score_person, suggest_offer
from rules.triage import TriageSettings
from storage import Store
from tests.conftest import T0

NOW = datetime.now(UTC)  # the CLI reads the system clock
BRAND = frozenset({"auroracaffe"})
SETTINGS = AdvocateSettings(
    excluded_handles=BRAND | {"giulia_staff"},
    offers=(
        OfferTemplate("vip-gift", "Ciao {{ name }}, grazie per le parole su {{ praised_text }}!", tiers=("vip",)),
        OfferTemplate("thanks", "Grazie {{ name }}: -20% con GRAZIE20", tiers=("fan", "advocate")),
    ),
)
counter = iter(range(1, 1_000_000))


def author(platform: str, ident: str, handle: str, reach: int = 0, name: str = "") -> Author:
    return Author(platform, ident, handle, display_name=name or handle, reach=reach)


def said(
    who: Author, text: str, days_ago: float, sentiment: str = "positive", p: float = 0.9, topics=(), base=T0
) -> Mention:
    return Mention(
        platform=who.platform,
        platform_id=f"m{next(counter)}",
        source="test",
        text=text,
        published_at=base - timedelta(days=days_ago),
        author=who,
        url=f"https://example.org/{who.handle}",
        tags={"sentiment": sentiment, "sentiment_probs": {sentiment: p}, "topics": list(topics)},
    )


def save(store: Store, *mentions: Mention) -> None:
    store.save_poll("test", "demo", Poll(mentions=mentions), T0)


MARTA_X = author("x", "2888888", "martaespresso", reach=1_900, name="Marta Conti")
MARTA_FB = author("facebook", "u900", "marta.espresso", name="Marta Conti")
FOODMAG = author("x", "2999999", "foodmag_italia", reach=480_000, name="FoodMag Italia")
PRAISE = [
    "Le capsule Decaffeinato sono le migliori che abbia provato",
    "Consegna in un giorno, imballo perfetto, bravissimi",
    "Aroma pazzesco, la mattina non parte senza Aurora",
    "Terzo mese di abbonamento e nemmeno un ritardo",
    "Ho regalato la macchina a mia madre, la adora",
    "Packaging compostabile e caffè buonissimo",
]


def fan_and_big_account(store: Store, base: datetime = T0) -> None:
    """Marta praises us six times in eleven days on two platforms; FoodMag (480k followers) once, 120 days ago."""
    save(store, said(FOODMAG, "Abbiamo assaggiato la nuova miscela: promossa", 120, topics=("capsule",), base=base))
    for i, text in enumerate(PRAISE):
        who = MARTA_X if i % 2 else MARTA_FB
        save(store, said(who, text, days_ago=1 + i * 2, topics=("capsule",) if i < 3 else ("consegna",), base=base))


def person_of(store: Store, who: Author) -> int:
    return store.people.resolve(who.key)


def test_a_fan_on_two_platforms_outranks_a_big_account_with_one_old_mention(store: Store) -> None:
    fan_and_big_account(store)
    score_advocates(SETTINGS, store, T0)
    [suggestion] = store.people.suggestions()  # same handle, ignoring the dot: probably one person
    assert suggestion.authors == (MARTA_FB.key, MARTA_X.key)
    assert set(suggestion.people) == {person_of(store, MARTA_X), person_of(store, MARTA_FB)}

    store.people.link(person_of(store, MARTA_X), MARTA_FB.key, "sara", T0)
    score_advocates(SETTINGS, store, T0)
    first, second = store.people.leaders(limit=2)
    assert first.person.name == "Marta Conti" and set(first.person.channels) == {"x", "facebook"}
    assert second.person.name == "FoodMag Italia"
    assert first.score > second.score
    assert first.tier == "vip" and second.tier == ""  # 120 days on, a sixteenth of its weight: 0.38
    assert set(first.praised) == {"capsule", "consegna"}


def test_the_explanation_adds_up_to_the_score_and_negatives_subtract(store: Store) -> None:
    fan_and_big_account(store)
    save(store, said(MARTA_X, "Ordine perso, nessuno risponde", days_ago=0.5, sentiment="negative", p=0.8))
    score_advocates(SETTINGS, store, T0)
    pid = person_of(store, MARTA_X)
    score = score_person(pid, store.people.said(T0 - timedelta(days=180), pid), SETTINGS, T0)
    assert score.score == pytest.approx(sum(c.value for c in score.contributions), abs=1e-3)
    negative = next(c for c in score.contributions if c.said.sentiment == "negative")
    assert negative.value < 0
    assert negative.value == pytest.approx(-0.8 * negative.reach_factor * negative.decay, abs=1e-3)
    assert store.people.leaders(person_id=pid)[0].score == score.score


def test_spam_bursts_the_brand_employees_and_self_promotion_do_not_move_the_score(store: Store) -> None:
    spammer = author("x", "666", "spammer", reach=50)
    brand = author("x", "1", "AuroraCaffe", reach=90_000)
    staff = author("forum", "7", "giulia_staff")
    promo = author("x", "8", "influencer", reach=20_000)
    honest = author("x", "9", "honest", reach=50)
    save(store, *(said(spammer, f"Adoro @AuroraCaffe, il miglior caffè del mondo!!! {i}", 1) for i in range(20)))
    save(store, *(said(honest, text, 1) for text in PRAISE))  # six different praises in one day
    save(store, said(brand, "Il nostro nuovo blend è fantastico", 1), said(staff, "Lavoro qui e lo adoro", 1))
    save(store, said(promo, "Adoro queste capsule, usa il mio codice SCONTO10", 1))
    scores = {}
    score_advocates(SETTINGS, store, T0)
    since = T0 - timedelta(days=180)
    for who in (spammer, honest, brand, staff, promo):
        pid = person_of(store, who)
        scores[who.handle] = score_person(pid, store.people.said(since, pid), SETTINGS, T0)
    assert scores["spammer"].counted == 1  # twenty copies count once
    assert "near-duplicate" in scores["spammer"].contributions[-1].excluded
    assert scores["honest"].counted == 3  # the burst cap: three a day
    assert "burst cap" in scores["honest"].contributions[-1].excluded
    for handle in ("AuroraCaffe", "giulia_staff", "influencer"):
        assert scores[handle].score == 0 and scores[handle].tier == ""
    assert "self-promotion" in scores["influencer"].contributions[0].excluded
    assert [leader.person.handles[0] for leader in store.people.leaders()] == ["honest", "spammer"]


def test_a_new_vip_is_announced_once_and_their_mentions_rise_in_priority(store: Store) -> None:
    fan_and_big_account(store)
    store.people.sync(T0)
    pid = person_of(store, MARTA_X)
    store.people.link(pid, MARTA_FB.key, "sara", T0)
    save(store, said(MARTA_X, "Stamattina un espresso perfetto, come sempre", days_ago=0.2))
    score_advocates(SETTINGS, store, T0)
    outbox = store.db.execute("SELECT key, body FROM outbox WHERE kind = 'vip_promotion'").fetchall()
    assert [key for key, _ in outbox] == [f"vip_promotion:{pid}"]
    assert "Suggested offer (vip-gift): Ciao Marta Conti, grazie per le parole su consegna, capsule!" in outbox[0][1]
    score_advocates(SETTINGS, store, T0 + timedelta(hours=1))
    assert store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'vip_promotion'").fetchone()[0] == 1
    # A praise from an advocate or VIP: one alert a person a day, with the offer.
    assert store.db.execute("SELECT count(*) FROM outbox WHERE kind = 'advocate_mention'").fetchone()[0] == 1

    question = said(MARTA_X, "Quando torna la miscela Intenso?", days_ago=0, sentiment="neutral")
    stranger = said(author("x", "77", "stranger", reach=10), "Quando torna la miscela Intenso?", 0, "neutral")
    save(store, question, stranger)
    triage(TriageSettings(), store, T0)
    assert store.conversation(question.key).priority == "high"
    assert store.conversation(stranger.key).priority == "normal"
    # A VIP turning negative is told whatever their reach (Marta's Facebook account has no followers).
    upset = said(MARTA_FB, "Ordine sbagliato, che delusione", days_ago=0, sentiment="negative")
    nobody = said(author("x", "78", "nobody", reach=10), "Ordine sbagliato, che delusione", 0, "negative")
    save(store, upset, nobody)
    [alert] = NegativeMention().evaluate(store, T0)
    assert alert.title == "Negative mention by VIP @marta.espresso (0 followers) on facebook"


def test_offers_render_in_a_sandbox_and_respect_opt_out_and_cooldown(store: Store) -> None:
    assert offer_problems("Ciao {{ nome }}", "advocates.offers[0].template") == [
        "advocates.offers[0].template: unknown variable nome; offers may use name, handle, handles, channel, "
        "channels, tier, score, praised, praised_text"
    ]
    escape = offer_problems("{{ name.__class__.__mro__[1].__subclasses__() }}", "t")
    assert escape and "cannot be rendered" in escape[0]
    assert "not a valid template" in offer_problems("Ciao {{ name ", "t")[0]
    # Mention text is a value, never template source: a name full of template syntax prints as typed.
    hostile = Person(1, "{{ 7*7 }} {% raw %}", ("evil",), ("x",))
    suggestion = suggest_offer(hostile, "advocate", 5.0, ("capsule",), SETTINGS, T0)
    assert suggestion.text == "Grazie {{ 7*7 }} {% raw %}: -20% con GRAZIE20"
    assert render_offer("{{ praised | join(' e ') }}", {"praised": ["a", "b"]}) == "a e b"

    fan_and_big_account(store)
    score_advocates(SETTINGS, store, T0)
    pid = person_of(store, MARTA_X)
    store.people.opt_out(pid, True, T0)
    marta = store.people.person(pid)
    assert suggest_offer(marta, "vip", 12.0, (), SETTINGS, T0).reason == "opted out of offers"
    store.people.opt_out(pid, False, T0)
    store.people.record_offer(pid, "thanks", "Grazie", "sara", T0 - timedelta(days=10))
    later = suggest_offer(store.people.person(pid), "advocate", 5.0, (), SETTINGS, T0)
    assert later.text == "" and "next from" in later.reason
    assert suggest_offer(store.people.person(pid), "advocate", 5.0, (), SETTINGS, T0 + timedelta(days=81)).text


def test_the_csv_export_opens_cleanly_in_a_spreadsheet_with_hostile_names_kept_inert(
    store: Store, tmp_path: Path
) -> None:
    fan_and_big_account(store)
    hostile = author("facebook", "u666", "evil", name='=HYPERLINK("http://x","y")')
    save(store, said(hostile, "Caffè buonissimo 😍 @evil", 1), said(hostile, "-2+3 capsule perfette", 2))
    score_advocates(SETTINGS, store, T0)
    store.people.opt_out(person_of(store, hostile), True, T0)
    text = render(advocate_rows(store.people.leaders(), SETTINGS, T0), ADVOCATE_COLUMNS, "csv")
    out = tmp_path / "advocates.csv"
    write_atomic(out, text, "csv")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    evil = next(r for r in rows if r["handles"] == "evil")
    assert evil["name"] == '\'=HYPERLINK("http://x","y")'
    assert evil["offer_consent"] == "no" and evil["suggested_offer"] == ""
    assert all(not v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())
    assert evil["last_praise"] == "Caffè buonissimo 😍 @evil"  # accents and emoji intact
    marta = next(r for r in rows if r["name"] == "Marta Conti")
    assert marta["tier"] == "advocate" and marta["offer_consent"] == "yes"
    assert marta["suggested_offer"] == "Grazie Marta Conti: -20% con GRAZIE20"

    data = json.loads(render(advocate_rows(store.people.leaders(), SETTINGS, T0), ADVOCATE_COLUMNS, "json"))
    assert next(r for r in data if r["handles"] == ["evil"])["name"] == '=HYPERLINK("http://x","y")'  # JSON as is


def test_an_export_that_cannot_be_written_says_so_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"folder .*missing does not exist"):
        write_atomic(tmp_path / "missing" / "a.csv", "x", "csv")
    with pytest.raises(ExportError, match="is a folder"):
        write_atomic(tmp_path, "x", "csv")
    target = tmp_path / "a.csv"
    target.write_text("the old export", encoding="utf-8")
    write_atomic(target, "new", "csv")
    assert target.read_text(encoding="utf-8-sig") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]  # no temporary file left


def test_testimonials_rank_strong_recent_praise_and_carry_the_authors_agreement(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store.open(tmp_path / "p.db")
    fan_and_big_account(store, NOW)
    brand = author("x", "1", "AuroraCaffe", reach=90_000)
    save(store, said(brand, "Il nostro blend è il migliore", 0.1, base=NOW))
    store.close()
    code, out = invoke(config, "testimonials", "export", "--format", "json", "--limit", "3")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3
    # Reach counts as in the score: Marta's X posts (1,900 followers) first, the most recent first among them.
    assert [r["handle"] for r in rows] == ["martaespresso"] * 3
    assert [r["published_at"] for r in rows] == sorted((r["published_at"] for r in rows), reverse=True)
    assert all(r["reuse_agreed"] is False and r["link"].startswith("https://") for r in rows)
    assert "AuroraCaffe" not in out  # the brand praising itself is no testimonial
    best = rows[0]["mention"]
    assert invoke(config, "testimonials", "agree", best, "--by", "sara", "--note", "DM") == (
        0,
        f"{best}: reuse agreed\n",
    )
    code, out = invoke(config, "testimonials", "export", "--format", "json", "--agreed-only")
    assert [(r["mention"], r["reuse_agreed"]) for r in json.loads(out)] == [(best, True)]
    assert invoke(config, "testimonials", "agree", "x:nope")[0] == 2


def test_an_erased_person_is_gone_from_every_table_and_export_and_never_comes_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = tmp_path / "p.db"
    store = Store.open(db)
    fan_and_big_account(store)
    x_mentions = [said(MARTA_X, "Caffè Marta-segreto buonissimo", 0.1)]
    save(store, *x_mentions)
    store.inbound.receive(
        "facebook", "page", [("k1", json.dumps({"from": {"id": "u900"}, "message": "Marta-segreto"}))], T0
    )
    score_advocates(SETTINGS, store, T0)
    pid = person_of(store, MARTA_X)
    store.people.link(pid, MARTA_FB.key, "sara", T0)
    store.people.record_offer(pid, "thanks", "Grazie Marta", "sara", T0)
    store.db.execute("UPDATE outbox SET body = body || ' Marta-segreto'")
    store.close()

    code, out = invoke(config, "erase", "@martaespresso")
    assert code == 2 and "add --yes to confirm" in out
    code, out = invoke(config, "erase", str(pid), "--yes")
    assert code == 0 and f"person {pid} erased" in out and "7 mentions" in out

    with sqlite3.connect(db) as raw:
        dump = "\n".join(raw.iterdump())
    for trace in ("Marta", "martaespresso", "marta.espresso", "2888888", "u900", "Marta-segreto"):
        assert trace not in dump
    assert (tmp_path / "p.db-wal").stat().st_size == 0  # checkpointed: no copy left in the log
    with sqlite3.connect(db) as raw:  # the search index forgot the words too, even in its merged segments
        assert raw.execute("SELECT count(*) FROM mentions_fts WHERE mentions_fts MATCH 'segreto'").fetchone()[0] == 0
    assert b"segreto" not in db.read_bytes()
    code, out = invoke(config, "advocates", "export", "--format", "json")
    assert code == 0 and "Marta" not in out and "FoodMag" not in out  # FoodMag scores 0.38: below every tier

    store = Store.open(db)
    save(store, said(MARTA_X, "Sono tornata!", 0), said(FOODMAG, "Ancora buono", 0))  # a later poll
    assert {row[0] for row in store.db.execute("SELECT author_key FROM mentions")} == {FOODMAG.key}
    store.close()
    assert invoke(config, "erase", "@martaespresso", "--yes") == (
        2,
        "passaparola: no author with the handle @martaespresso; give a person id or an author key instead\n",
    )


def test_the_retention_window_deletes_old_mentions_with_what_was_derived_from_them(store: Store) -> None:
    fan_and_big_account(store)
    score_advocates(SETTINGS, store, T0)
    store.enqueue([], T0)
    assert store.mentions.delete_published_before(T0 - timedelta(days=30)) == 1  # FoodMag's, 120 days old
    assert store.db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 6
    for table in ("mention_tags", "conversations"):
        assert store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 6
    assert store.db.execute("SELECT count(*) FROM authors WHERE handle = 'foodmag_italia'").fetchone()[0] == 0
    with pytest.raises(ValueError, match="no author"):
        store.people.resolve(FOODMAG.key)


def test_check_names_bad_offer_templates_and_tiers(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[advocates]
tiers = { fan = 5, advocate = 2, hero = 9 }

[[advocates.offers]]
name = "gift"
template = "Ciao {{ nome }}"

[[advocates.offers]]
name = "escape"
template = "{{ name.__class__.__mro__ }}"
""",
        encoding="utf-8",
    )
    code, out = invoke(path, "check")
    assert code == 2
    assert "advocates: unknown tier 'hero'" in out
    assert "advocates.tiers: thresholds must rise" in out
    assert "advocates.offers[0] (gift).template: unknown variable nome" in out
    assert "advocates.offers[1] (escape).template: the template cannot be rendered" in out


def test_the_cli_links_explains_offers_and_exports(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store.open(tmp_path / "p.db")
    fan_and_big_account(store, NOW)
    store.close()
    code, out = invoke(config, "advocates", "suggest")
    assert code == 0 and "@martaespresso: people" in out
    assert invoke(config, "advocates", "explain", "42")[0] == 2
    code, out = invoke(config, "advocates", "link", "@martaespresso", MARTA_FB.key)
    assert code == 0 and f"{MARTA_FB.key} is now person" in out
    code, out = invoke(config, "advocates", "explain", MARTA_X.key)
    assert code == 0 and "tier vip" in out and sum(line.lstrip().startswith("+") for line in out.splitlines()) == 6
    code, out = invoke(config, "advocates", "offer", MARTA_X.key, "--send", "--by", "sara")
    assert code == 0 and out.startswith("sent (vip-gift): Ciao Marta Conti")
    code, out = invoke(config, "advocates", "offer", MARTA_X.key, "--send")
    assert code == 2 and "no offer to send (had an offer on" in out
    out_file = tmp_path / "vip.csv"
    code, out = invoke(config, "advocates", "export", "--tier", "vip", "--out", str(out_file))
    assert code == 0 and out == f"1 people written to {out_file}\n"
    [row] = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8-sig"))))
    assert row["name"] == "Marta Conti" and row["channels"] in ("facebook; x", "x; facebook")
    code, out = invoke(config, "advocates", "export", "--out", str(tmp_path / "nowhere" / "a.csv"))
    assert code == 2 and "folder" in out and "does not exist" in out


CONFIG = """
[storage]
path = "{db}"

[analysis.brand]
handles = ["AuroraCaffe"]

[advocates]
employees = ["giulia_staff"]

[[advocates.offers]]
name = "vip-gift"
tiers = ["vip"]
template = "Ciao {{{{ name }}}}, grazie per le parole su {{{{ praised_text }}}}!"
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(CONFIG.format(db=tmp_path / "p.db"), encoding="utf-8")
    return path


def invoke(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [*args[:2], "--config", str(config), *args[2:]]
        if args[0] in GROUPS
        else [args[0], "--config", str(config), *args[1:]],
    )
    return result.exit_code, result.output


GROUPS = ("advocates", "testimonials")
