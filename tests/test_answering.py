"""Answering from passaparola (`ReplyActions`) against the local Graph double: sent exactly once, the house rules
enforced with a supervisor's override, approval, saved replies, out-of-hours replies, errors that keep the draft."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from passaparola.actions import Actor, Refusal, ReplyActions, ReplyBlocked
from passaparola.actions.replies import LOOKUP_AFTER, STALE_ATTEMPT, Attempt
from passaparola.config import Settings
from storage import Store
from tests.conftest import FIXTURES, T0, settings_from
from tests.graphapi import PAGE_ID, FakeGraph

TOKEN = "EAAG-page-token-SENTINEL"
LUISA = "facebook:2002_303"  # "Le capsule nuove sono compatibili con la mia macchina?", open since 08:20
GOOD = "Ciao Luisa, sì: le capsule nuove vanno su tutte le nostre macchine. ^GL"
GIULIA = Actor("giulia", "agent", "giulia", "session")
LUCA = Actor("luca", "agent", "luca", "session")
SARA = Actor("sara", "supervisor", "sara", "session")

CONFIG = """
[triage]
timezone = "Europe/Rome"
{hours}

[[triage.members]]
name = "giulia"
languages = ["it"]
signature = "^GL"

[[triage.members]]
name = "luca"
languages = ["it"]
signature = "^LC"
needs_approval = true

[[triage.members]]
name = "sara"
languages = ["it"]
signature = "^SR"

[engagement]
out_of_hours = {ack}

[[engagement.saved]]
name = "compatibilita"
language = "it"
text = "Ciao $first_name, sì: le capsule vanno bene. Il codice del tuo ordine è $reference. $signature"

[[sources]]
type = "facebook"
name = "page"
page_id = "{page}"
access_token = {{ env = "FB_TOKEN" }}
base_url = "{url}"
timeout_seconds = 0.5
"""


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    page = json.loads((FIXTURES / "facebook" / "page.json").read_text(encoding="utf-8"))
    fake = FakeGraph(posts=page["posts"], comments=page["comments"], token=TOKEN)
    fake.write_time = T0 + timedelta(minutes=1)
    yield from fake.serve()


def configured(graph: FakeGraph, tmp_path: Path, hours: str = "", ack: str = "[]") -> Settings:
    text = CONFIG.format(hours=hours, ack=ack, page=PAGE_ID, url=graph.base_url)
    return settings_from(text, tmp_path, {"FB_TOKEN": TOKEN})


def heard(settings: Settings, store: Store) -> None:
    """One poll of the Page, stored: the mentions to answer."""
    source = settings.sources[0].source
    store.save_poll("page", "facebook", source.poll(store.cursor("page"), T0), T0)


@pytest.fixture
def settings(graph: FakeGraph, tmp_path: Path, store: Store) -> Settings:
    s = configured(graph, tmp_path)
    heard(s, store)
    return s


def test_a_reply_is_posted_once_and_answers_the_mention_as_its_writer(
    graph: FakeGraph, settings: Settings, store: Store
) -> None:
    actions = ReplyActions(settings, store)
    reply = actions.send(GIULIA, LUISA, GOOD, T0, idempotency_key="k-1")
    assert reply.state == "queued"
    sent = actions.attempt(reply.id, T0)
    assert sent is not None and sent.state == "sent" and sent.platform_id
    [write] = graph.writes
    assert write["form"]["message"] == [GOOD] or write["form"].get("message") in (GOOD, [GOOD])
    assert write["path"].startswith("/v21.0/2002_303/comments")
    c = store.conversation(LUISA)
    assert c is not None and (c.state, c.answered_by) == ("answered", "giulia")
    assert c.response_seconds == 41 * 60  # 08:20 to the reply's 09:01: the SLA stopped at the platform's time

    # A second click (the same key) is the same reply: nothing more is posted.
    again = actions.send(GIULIA, LUISA, GOOD, T0, idempotency_key="k-1")
    assert again.id == reply.id and len(graph.writes) == 1

    # The next poll hears our comment as the brand's reply and adds nothing.
    result = store.save_poll("page", "facebook", settings.sources[0].source.poll(store.cursor("page"), T0), T0)
    assert (result.new_mentions, result.new_replies, result.answered) == (0, 0, 0)
    assert store.conversation(LUISA).answered_by == "giulia"  # type: ignore[union-attr]
    events = [(event, member) for _, event, member, _ in store.conversations.events(LUISA)]
    assert ("reply", "giulia") in events and ("answered", "giulia") in events


def test_a_blocked_reply_is_not_sent_unless_a_supervisor_overrides_with_a_reason(
    graph: FakeGraph, settings: Settings, store: Store
) -> None:
    actions = ReplyActions(settings, store)
    rude = "le capsule vanno bene, leggi le istruzioni"  # no greeting, no signature
    with pytest.raises(ReplyBlocked) as blocked:
        actions.send(GIULIA, LUISA, rude, T0)
    assert {f.code for f in blocked.value.findings if f.level == "block"} == {"missing_greeting", "missing_signature"}
    with pytest.raises(Refusal, match="only a supervisor can override") as refused:
        actions.send(GIULIA, LUISA, rude, T0, override_reason="the customer asked for short answers")
    assert refused.value.status == 403
    assert graph.writes == [] and store.replies.for_mention(LUISA) == []

    reply = actions.send(SARA, LUISA, rude, T0, override_reason="the customer asked for short answers")
    done = actions.attempt(reply.id, T0)
    assert done is not None and done.state == "sent" and len(graph.writes) == 1
    assert (done.override_by, done.override_reason) == ("sara", "the customer asked for short answers")
    assert {f["code"] for f in done.findings} >= {"missing_greeting", "missing_signature"}  # the audit keeps them


def test_a_member_needing_approval_waits_for_a_supervisor_who_edits_or_rejects(
    graph: FakeGraph, settings: Settings, store: Store
) -> None:
    actions = ReplyActions(settings, store)
    first = actions.send(LUCA, LUISA, "Ciao Luisa, sì, vanno bene. ^LC", T0)
    assert first.state == "pending_approval" and actions.attempt(first.id, T0) is None and graph.writes == []
    [queued] = actions.approvals(T0 + timedelta(minutes=50))
    assert queued["id"] == first.id and queued["author"] == "Luisa Neri"
    assert queued["overdue"] is False  # the clock keeps running: the cockpit shows when it breaches

    with pytest.raises(Refusal, match="only a supervisor"):
        actions.review(GIULIA, first.id, True, T0)
    with pytest.raises(Refusal, match="say why"):
        actions.review(SARA, first.id, False, T0)
    rejected = actions.review(SARA, first.id, False, T0, comment="dille anche del nuovo formato")
    assert rejected.state == "rejected" and graph.writes == []
    box = actions.composer(LUCA, LUISA, T0)
    assert box["draft"] == "Ciao Luisa, sì, vanno bene. ^LC" and "dille anche del nuovo formato" in box["draft_problem"]

    second = actions.send(LUCA, LUISA, "Ciao Luisa, sì, vanno bene. ^LC", T0 + timedelta(minutes=5))
    edited = "Ciao Luisa, sì: vanno bene, anche nel nuovo formato. ^LC"
    approved = actions.review(SARA, second.id, True, T0 + timedelta(minutes=6), text=edited)
    assert approved.state == "queued" and approved.approved_by == "sara"
    sent = actions.attempt(approved.id, T0 + timedelta(minutes=6))
    assert sent is not None and sent.state == "sent" and sent.text == edited
    assert [w["form"]["message"] for w in graph.writes] in ([edited], [[edited]])
    assert store.conversation(LUISA).answered_by == "luca"  # type: ignore[union-attr]


def test_a_crash_between_post_and_record_never_posts_twice(graph: FakeGraph, settings: Settings, store: Store) -> None:
    actions = ReplyActions(settings, store)
    reply = actions.send(GIULIA, LUISA, GOOD, T0)
    started = actions.begin(reply.id, T0)
    assert isinstance(started, Attempt)
    started.run(T0)  # Graph takes the comment... and passaparola dies before recording it
    assert len(graph.writes) == 1 and store.replies.get(reply.id).state == "sending"  # type: ignore[union-attr]

    # Restarted, the daemon's pass finds the attempt stale, looks the thread up, and records what is there.
    later = T0 + STALE_ATTEMPT + timedelta(seconds=1)
    assert actions.deliver_due(later) == 1
    assert len(graph.writes) == 1
    done = store.replies.get(reply.id)
    assert done is not None and done.state == "sent" and done.attempts == 2
    assert store.conversation(LUISA).state == "answered"  # type: ignore[union-attr]


def test_a_timeout_after_graph_accepted_is_looked_up_before_any_retry(
    graph: FakeGraph, settings: Settings, store: Store
) -> None:
    graph.stall_seconds = 1.5  # the source's timeout is 0.5 s
    actions = ReplyActions(settings, store)
    reply = actions.attempt(actions.send(GIULIA, LUISA, GOOD, T0).id, T0)
    assert reply is not None and (reply.state, reply.problem) == ("unknown", "unknown")
    box = actions.composer(GIULIA, LUISA, T0)
    assert [r["state"] for r in box["under_way"]] == ["unknown"]
    graph.stall_seconds = 0
    assert actions.deliver_due(T0) == 0  # not before the lookup is due
    graph.error = {"status": 503, "body": {"error": {"message": "Service temporarily unavailable", "code": 2}}}
    assert actions.deliver_due(T0 + LOOKUP_AFTER) == 0  # the lookup failed: still unknown, never posted blindly
    assert store.replies.get(reply.id).state == "unknown" and len(graph.writes) == 1  # type: ignore[union-attr]
    graph.error = None
    assert actions.deliver_due(T0 + 3 * LOOKUP_AFTER) == 1
    assert len(graph.writes) == 1 and store.replies.get(reply.id).state == "sent"  # type: ignore[union-attr]


def test_an_expired_token_keeps_the_draft_and_says_what_to_do(
    graph: FakeGraph, settings: Settings, store: Store
) -> None:
    graph.refuse_writes = "expired"
    actions = ReplyActions(settings, store)
    reply = actions.attempt(actions.send(GIULIA, LUISA, GOOD, T0).id, T0)
    assert reply is not None and (reply.state, reply.problem) == ("failed", "expired_token")
    assert TOKEN not in reply.error
    box = actions.composer(GIULIA, LUISA, T0)
    assert box["draft"] == GOOD and "renew the token" in box["draft_problem"]
    assert store.conversation(LUISA).is_open  # type: ignore[union-attr]
    assert actions.deliver_due(T0 + timedelta(hours=1)) == 0  # a person must act: no blind retry


def test_a_rate_limit_is_retried_after_the_reset_by_itself(graph: FakeGraph, settings: Settings, store: Store) -> None:
    graph.refuse_writes = "rate_limited"
    actions = ReplyActions(settings, store)
    reply = actions.attempt(actions.send(GIULIA, LUISA, GOOD, T0).id, T0)
    assert reply is not None and (reply.state, reply.problem) == ("queued", "rate_limited")
    assert reply.next_attempt_at is not None and reply.next_attempt_at > T0
    graph.refuse_writes = ""
    assert actions.deliver_due(T0) == 0
    assert actions.deliver_due(reply.next_attempt_at) == 1 and len(graph.replies("2002_303")) == 1


def test_saved_replies_fill_in_their_variables_or_name_what_is_missing(settings: Settings, store: Store) -> None:
    actions = ReplyActions(settings, store)
    with pytest.raises(Refusal, match="order or ticket number") as missing:
        actions.fill_saved(GIULIA, LUISA, "compatibilita", T0)
    assert missing.value.status == 400
    text = actions.fill_saved(GIULIA, LUISA, "compatibilita", T0, reference="AUR-12345")
    assert text == "Ciao Luisa, sì: le capsule vanno bene. Il codice del tuo ordine è AUR-12345. ^GL"
    assert actions.check(GIULIA, LUISA, text).verdict == "ok"
    with pytest.raises(Refusal, match="no saved reply 'nope'; known: compatibilita"):
        actions.fill_saved(GIULIA, LUISA, "nope", T0)
    assert [s["name"] for s in actions.composer(GIULIA, LUISA, T0, query="capsule")["saved"]] == ["compatibilita"]
    assert actions.composer(GIULIA, LUISA, T0, query="rimborso")["saved"] == []


def test_outside_business_hours_each_author_gets_one_honest_acknowledgement(
    graph: FakeGraph, tmp_path: Path, store: Store
) -> None:
    hours = 'business_hours = { mon = ["09:00-18:00"], tue = ["09:00-18:00"] }'
    settings = configured(graph, tmp_path, hours=hours, ack='["facebook"]')
    heard(settings, store)
    store.mentions.replace_tags({LUISA: {"needs_answer": True, "language": "it"}}, T0)
    actions = ReplyActions(settings, store)
    evening = T0 + timedelta(hours=9)  # Monday 19:00 in Rome: closed until Tuesday 9:00
    fresh = evening - timedelta(minutes=30)
    store.db.execute("UPDATE mentions SET published_at = ? WHERE key = ?", [fresh.isoformat(), LUISA])
    assert actions.acknowledge_out_of_hours(evening) == 1
    [write] = graph.writes
    message = write["form"]["message"]
    message = message[0] if isinstance(message, list) else message
    assert "Ciao Luisa" in message and "domani alle 9:00" in message
    c = store.conversation(LUISA)
    assert c is not None and c.is_open  # a holding reply answers nothing: a person still must
    assert actions.acknowledge_out_of_hours(evening + timedelta(minutes=10)) == 0 and len(graph.writes) == 1
    assert actions.acknowledge_out_of_hours(T0 + timedelta(hours=1)) == 0  # open hours: nothing is sent


def test_a_channel_with_no_write_api_records_the_reply_posted_by_hand(settings: Settings, store: Store) -> None:
    from listener.model import Author, Mention, Poll

    review = Mention(
        "review", "r-1", "reviews", "Servizio lento.", T0 - timedelta(minutes=5), Author("review", "u1", "Pia")
    )
    store.save_poll("reviews", "feed", Poll(mentions=(review,)), T0)
    actions = ReplyActions(settings, store)
    assert actions.composer(GIULIA, review.key, T0)["can_send"] is False
    with pytest.raises(Refusal, match="post it on review yourself") as refused:
        actions.send(GIULIA, review.key, "Ciao Pia, ci dispiace. ^GL", T0)
    assert refused.value.status == 409
    reply = actions.copied(GIULIA, review.key, "Ciao Pia, ci dispiace. ^GL", T0)
    assert reply.state == "copied"
    c = store.conversation(review.key)
    assert c is not None and (c.state, c.answered_by) == ("answered", "giulia")


def test_an_api_token_cannot_sign_a_reply(settings: Settings, store: Store) -> None:
    robot = Actor("ci-bot", "admin", "", "token")
    with pytest.raises(Refusal, match="signed by a member") as refused:
        ReplyActions(settings, store).send(robot, LUISA, GOOD, T0)
    assert refused.value.status == 403


X_CONFIG = """
[[triage.members]]
name = "giulia"
languages = ["it"]
signature = "^GL"

[[sources]]
type = "x"
name = "x"
accounts = ["AuroraCaffe"]
keywords = ["aurora"]
base_url = "{url}"
bearer_token = {{ env = "X_BEARER" }}
consumer_key = {{ env = "X_KEY" }}
consumer_secret = {{ env = "X_SECRET" }}
access_token = {{ env = "X_ACCESS" }}
access_token_secret = {{ env = "X_ACCESS_SECRET" }}
monthly_budget_usd = 5.0
"""


def test_the_x_budget_refuses_a_write_it_cannot_pay_for_before_anything_is_posted(tmp_path: Path, store: Store) -> None:
    from listener.model import Poll
    from tests import test_x_reply as keys
    from tests.xapi import FakeX, serve

    x = FakeX.from_fixture(keys.TOKEN, T0)
    x.consumer_key, x.consumer_secret = keys.CONSUMER_KEY, keys.CONSUMER_SECRET
    x.access_token, x.access_token_secret = keys.ACCESS_TOKEN, keys.ACCESS_TOKEN_SECRET
    environ = {
        "X_BEARER": keys.TOKEN,
        "X_KEY": keys.CONSUMER_KEY,
        "X_SECRET": keys.CONSUMER_SECRET,
        "X_ACCESS": keys.ACCESS_TOKEN,
        "X_ACCESS_SECRET": keys.ACCESS_TOKEN_SECRET,
    }
    with serve(x) as fake:
        settings = settings_from(X_CONFIG.format(url=fake.base_url), tmp_path, environ)
        anna = keys.mention()
        # This month's reads have cost $4.98 so far, as the source's cursor keeps it.
        spent = {"budget": {"month": T0.strftime("%Y-%m"), "reads": 996, "cost_usd": 4.98}}
        store.save_poll("x", "x", Poll(mentions=(anna,), cursor=spent), T0)
        actions = ReplyActions(settings, store)
        linked = "Ciao Anna, ci scusiamo: trovi tutto su https://www.auroracaffe.it/rimborsi ^GL"
        with pytest.raises(Refusal, match=r"x budget: \$4.98 of \$5.00 spent .* costs \$0.200 \(it has a link\)"):
            actions.send(GIULIA, anna.key, linked, T0)
        assert fake.writes == [] and store.replies.for_mention(anna.key) == []

        plain = "Ciao Anna, ci scusiamo per il ritardo: ti scriviamo ora in DM. ^GL"
        sent = actions.attempt(actions.send(GIULIA, anna.key, plain, T0).id, T0)
        assert sent is not None and sent.state == "sent" and sent.cost_usd == 0.015
        assert len(fake.writes) == 1
        # $4.995 now: another plain reply ($0.015) would pass $5.00.
        with pytest.raises(Refusal, match="budget"):
            actions.send(GIULIA, anna.key, plain.replace("ora", "subito"), T0)


def test_a_reply_too_long_for_x_as_x_counts_it_is_blocked(tmp_path: Path, store: Store) -> None:
    from listener.model import Poll
    from tests import test_x_reply as keys

    environ = {"X_BEARER": keys.TOKEN, "X_KEY": "k", "X_SECRET": "s", "X_ACCESS": "a", "X_ACCESS_SECRET": "t"}
    settings = settings_from(X_CONFIG.format(url="http://127.0.0.1:9"), tmp_path, environ)
    anna = keys.mention()
    store.save_poll("x", "x", Poll(mentions=(anna,)), T0)
    actions = ReplyActions(settings, store)
    emoji = "Ciao Anna, ci scusiamo " + "☕" * 135 + " ^GL"  # 162 characters, 297 as X counts: emoji weigh 2
    checked = actions.check(GIULIA, anna.key, emoji)
    assert len(emoji) < 280 and checked.verdict == "block"
    assert [f.code for f in checked.findings if f.level == "block"] == ["too_long"]
    link = "Ciao Anna, ci scusiamo: https://www.auroracaffe.it/" + "a" * 300 + " ^GL"  # a link counts 23
    assert actions.check(GIULIA, anna.key, link).verdict == "ok"


def test_the_command_line_replies_and_lists_the_audit(graph: FakeGraph, tmp_path: Path) -> None:
    from tests.conftest import PASSAPAROLA, cli_env, run_cli

    db = tmp_path / "p.db"
    text = f'[storage]\npath = "{db}"\n' + CONFIG.format(hours="", ack="[]", page=PAGE_ID, url=graph.base_url)
    config = tmp_path / "passaparola.toml"
    config.write_text(text, encoding="utf-8")
    settings = settings_from(text, tmp_path, {"FB_TOKEN": TOKEN})
    store = Store.open(db)
    heard(settings, store)
    store.close()
    env = cli_env(FB_TOKEN=TOKEN)

    blocked = run_cli([*PASSAPAROLA, "reply", LUISA, "vanno bene", "--member", "giulia", "--config", str(config)], env)
    assert blocked.returncode == 2 and "block: open with a greeting" in blocked.stderr
    assert graph.replies("2002_303") == []

    sent = run_cli([*PASSAPAROLA, "reply", LUISA, GOOD, "--member", "giulia", "--config", str(config)], env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"reply 1 on {LUISA}: sent as 2002_")
    assert [c["message"] for c in graph.replies("2002_303")] == [GOOD]
    audit = run_cli([*PASSAPAROLA, "replies", "list", "--mention", LUISA, "--json", "--config", str(config)], env)
    [row] = [json.loads(line) for line in audit.stdout.splitlines()]
    assert (row["state"], row["written_by"], row["text"]) == ("sent", "giulia", GOOD)
    assert TOKEN not in sent.stdout + sent.stderr + audit.stdout + audit.stderr
