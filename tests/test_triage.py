"""Triage with a fixed clock: business time across evenings, weekends, holidays and a DST change; policies,
priorities and routes; assignment to people on shift with the skill; the SLA warning, breach and escalation
ladder; answers typed on the platform closing items with the right response time; figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from listener import Author, BrandReply, Mention, Poll
from passaparola.pipeline import triage
from rules import Unanswered
from rules.triage import Hours, Member, Team, TriageSettings, figures, parse_weekly
from rules.unanswered import EscalationStep
from storage import Store

ROME = ZoneInfo("Europe/Rome")


def rome(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A wall-clock time in Rome in 2026, as aware UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=ROME).astimezone(UTC)


def hours(spec: dict[str, list[str]], holidays: tuple[date, ...] = ()) -> Hours:
    weekly, problems = parse_weekly(spec, "test")
    assert problems == []
    return Hours(ROME, weekly, frozenset(holidays))


OFFICE = {"mon-fri": ["09:00-18:00"]}


# -- business time -----------------------------------------------------------------------------------


def test_a_friday_evening_mention_is_due_on_monday_morning() -> None:
    office = hours(OFFICE)
    friday = rome(6, 17, 30)  # Friday 6 March 2026, 17:30 in Rome
    assert office.add(friday, timedelta(minutes=60)) == rome(9, 9, 30)
    assert office.add(friday, timedelta(minutes=45)) == rome(9, 9, 15)
    assert office.elapsed(friday, rome(9, 9, 30)) == timedelta(minutes=60)
    assert not office.is_open(rome(7, 11)) and office.is_open(rome(9, 9))


def test_a_holiday_stops_the_clock_for_the_whole_day() -> None:
    office = hours(OFFICE, holidays=(date(2026, 3, 9),))
    assert office.add(rome(6, 17, 30), timedelta(minutes=60)) == rome(10, 9, 30)


def test_deadlines_follow_the_wall_clock_across_the_dst_change() -> None:
    # Italy moves to summer time on Sunday 29 March 2026: 02:00 becomes 03:00.
    daily = hours({"daily": ["08:00-20:00"]})
    saturday = rome(28, 19, 30)  # 18:30 UTC, winter time
    due = daily.add(saturday, timedelta(minutes=60))
    assert due == rome(29, 8, 30) == datetime(2026, 3, 29, 6, 30, tzinfo=UTC)  # summer time: UTC+2
    all_day = hours({"daily": ["00:00-24:00"]})
    assert all_day.elapsed(rome(28, 22), rome(29, 4)) == timedelta(hours=5)  # the night lost an hour
    assert Hours(ROME).add(rome(28, 23, 30), timedelta(hours=4)) == rome(28, 23, 30) + timedelta(hours=4)


def test_a_night_shift_runs_past_midnight() -> None:
    night = hours({"mon-fri": ["22:00-06:00"]})
    assert night.is_open(rome(3, 23)) and night.is_open(rome(4, 5, 59))
    assert not night.is_open(rome(4, 7)) and not night.is_open(rome(3, 21))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"mon": ["09:00-13:00", "12:00-18:00"]}, "intervals overlap on mon"),
        ({"mon": ["09:00-09:00"]}, "is empty"),
        ({"mon": ["9 to 5"]}, "is not an interval"),
        ({"monday-ish": ["09:00-17:00"]}, "not a day"),
        ({"mon": []}, "no working hours at all"),
    ],
)
def test_bad_hours_are_named(spec: dict[str, list[str]], problem: str) -> None:
    assert any(problem in line for line in parse_weekly(spec, "shifts")[1])


# -- what needs an answer, how urgent, for which team ----------------------------------------------------

ANNA = Author("x", "42", "anna", "Anna Rossi", reach=120)
BIG = Author("x", "7", "bignews", "Big News", reach=250_000)
JOHN = Author("x", "43", "john", "John Byrne", reach=80)


def said(
    pid: str,
    at: datetime,
    text: str = "Ordine fermo @AuroraCaffe?",
    author: Author = ANNA,
    platform: str = "x",
    thread: str = "",
    **tags: object,
) -> Mention:
    tags = {"language": "it", "sentiment": "neutral", "needs_answer": 1, **tags}
    a = Author(platform, author.platform_id, author.handle, author.display_name, author.reach)
    return Mention(platform, pid, "test", text, at, a, thread_id=thread or pid, tags=tags)


def answer(pid: str, to: str, at: datetime, platform: str = "x") -> BrandReply:
    return BrandReply(platform, pid, "test", at, "AuroraCaffe", in_reply_to=to)


def store_at(store: Store, at: datetime, *items: Mention | BrandReply) -> None:
    mentions = tuple(i for i in items if isinstance(i, Mention))
    replies = tuple(i for i in items if isinstance(i, BrandReply))
    store.save_poll("test", "test", Poll(mentions=mentions, replies=replies), at)


def test_channel_policies_decide_what_needs_an_answer(store: Store) -> None:
    now = rome(2, 10)
    store_at(
        store,
        now,
        said("1", now, "grazie!", needs_answer=0),
        said("2", now, "bel post", platform="facebook", needs_answer=0),
        said("3", now, "ok", platform="review", needs_answer=0, sentiment="positive"),
    )
    triage(TriageSettings(policies={"review": "negative"}), store, now)
    states = {k: store.conversation(k) for k in ("x:1", "facebook:2", "review:3")}
    assert states["x:1"].state == "ignored" and "tagged as needing no answer" in states["x:1"].state_reason  # type: ignore[union-attr]
    assert states["facebook:2"].state == "new"  # type: ignore[union-attr]  # every page comment is answered
    assert states["review:3"].state == "ignored"  # type: ignore[union-attr]


def test_reviews_below_four_stars_need_an_answer_in_a_business_day_and_the_rest_a_thank_you(store: Store) -> None:
    now = rome(6, 17)  # Friday 17:00 in Rome: an hour left of the office day
    stars = {n: Mention("gbp", f"r{n}", "test", "…", now, Author("gbp", f"p{n}", f"p{n}"), metrics={"rating": n})
             for n in (1, 3, 4, 5)}  # fmt: skip
    store_at(store, now, *stars.values())
    office = TriageSettings(business=hours(OFFICE))
    triage(office, store, now)
    got = {n: store.conversation(f"gbp:r{n}") for n in stars}
    assert {n: c.state for n, c in got.items()} == dict.fromkeys(stars, "new")  # type: ignore[union-attr]
    assert got[1].priority == got[3].priority == "high" and got[5].priority == "normal"  # type: ignore[union-attr]
    # One business day of a 09:00-18:00 office is 9 hours: an hour on Friday, eight on Monday.
    assert got[1].due_at == rome(9, 17)  # type: ignore[union-attr]
    assert got[4].due_at == rome(11, 17)  # type: ignore[union-attr]  # a thank-you: three business days
    minutes = TriageSettings(business=hours(OFFICE), targets={"gbp": {"normal": 60, "high": 30, "urgent": 15}})
    assert minutes.target_minutes("gbp", "high", False) == 30  # a channel given in minutes keeps its minutes

    store2 = Store.memory()
    store_at(store2, now, *stars.values())
    triage(TriageSettings(business=hours(OFFICE), thank_reviews=False), store2, now)
    assert store2.conversation("gbp:r5").state == "ignored"  # type: ignore[union-attr]
    assert "thank-yous are off" in store2.conversation("gbp:r5").state_reason  # type: ignore[union-attr]
    assert store2.conversation("gbp:r3").state == "new"  # type: ignore[union-attr]
    store2.close()


def test_negative_big_accounts_and_vips_rise_in_priority_and_targets(store: Store) -> None:
    now = rome(2, 10)
    store_at(
        store,
        now,
        said("1", now),
        said("2", now, sentiment="negative"),
        said("3", now, author=BIG, sentiment="negative"),
        said("4", now, author=JOHN),
    )
    settings = TriageSettings(targets={"*": {"normal": 60, "high": 30, "urgent": 15}}, vip_handles=frozenset({"john"}))
    triage(settings, store, now)
    got = {k: store.conversation(f"x:{k}") for k in "1234"}
    assert [got[k].priority for k in "1234"] == ["normal", "high", "urgent", "high"]  # type: ignore[union-attr]
    assert got["3"].due_at == now + timedelta(minutes=15)  # type: ignore[union-attr]
    assert got["2"].warn_at == now + timedelta(minutes=22, seconds=30)  # type: ignore[union-attr]


def test_routes_by_keyword_topic_and_language(store: Store) -> None:
    now = rome(2, 10)
    store_at(
        store,
        now,
        said("1", now, "Doppio ADDEBITO sul conto"),
        said("2", now, "dove è il mio pacco", topics=["consegna"]),
        said("3", now, "where is my parcel", language="en", topics=["consegna"]),
        said("4", now, "che bel caffè"),
    )
    teams = (
        Team("billing", keywords=("addebito", "rimborso")),
        Team("shipping-it", topics=("consegna",), languages=("it",)),
        Team("shipping-en", topics=("consegna",)),
    )
    triage(TriageSettings(teams=teams, default_team="care"), store, now)
    assert [store.conversation(f"x:{k}").team for k in "1234"] == [  # type: ignore[union-attr]
        "billing",
        "shipping-it",
        "shipping-en",
        "care",
    ]


def test_clock_skew_never_gives_negative_age_and_an_early_reply_counts_zero(store: Store) -> None:
    seen = rome(2, 10)
    store_at(store, seen, said("1", seen + timedelta(minutes=5)))  # the platform's clock is 5 min ahead
    triage(TriageSettings(), store, seen)
    assert store.conversation("x:1").due_at == seen + timedelta(minutes=60)  # type: ignore[union-attr]
    store_at(store, seen + timedelta(minutes=2), answer("90", to="1", at=seen + timedelta(minutes=4)))
    assert store.conversation("x:1").response_seconds == 0  # type: ignore[union-attr]


# -- assignment -------------------------------------------------------------------------------------------


def team_settings(capacity: int = 3, **extra: object) -> TriageSettings:
    day = {"mon-fri": ["08:00-14:00"]}
    late = {"mon-fri": ["13:00-20:00"]}
    return TriageSettings(
        business=Hours(ROME),
        teams=(Team("billing", keywords=("addebito",)), Team("shipping", keywords=("pacco", "parcel", "delivery"))),
        members=(
            Member("giulia", ("billing",), ("it",), hours(day), capacity),
            Member("marco", ("billing", "shipping"), ("it", "en"), hours(late), capacity),
            Member("sara", ("shipping",), ("en",), hours({"mon-fri": ["09:00-17:00"]}), capacity),
            Member("luca", ("billing",), ("it",), hours(day), capacity, away=True),
        ),
        **extra,  # type: ignore[arg-type]
    )


def test_scripted_morning_assign_warn_breach_escalate_and_close_on_an_answer_typed_on_x(store: Store) -> None:
    settings = team_settings()
    rule = Unanswered(route="care", escalation=[EscalationStep(0, "supervisors"), EscalationStep(60, "managers")])
    t = rome(2, 10)  # Monday 10:00: giulia and sara on shift, marco not yet, luca away
    store_at(
        store,
        t,
        said("1", t, "Doppio addebito sul conto, perché?", sentiment="negative"),
        said("2", t, "Where is my delivery?", author=JOHN, language="en"),
    )
    triage(settings, store, t)
    assert store.conversation("x:1").assignee == "giulia"  # type: ignore[union-attr]
    assert store.conversation("x:2").assignee == "sara"  # type: ignore[union-attr]

    def told(at: datetime) -> list[tuple[str, str]]:
        triage(settings, store, at)
        return [(a.key, a.route) for a in rule.evaluate(store, at)]

    assert told(t + timedelta(minutes=44)) == []
    assert told(t + timedelta(minutes=45)) == [("sla_warning:x:1", "care"), ("sla_warning:x:2", "care")]
    # Someone answers John on X itself, outside passaparola, at 10:50: it closes with a 50-minute response.
    store_at(store, t + timedelta(minutes=52), answer("900", to="2", at=t + timedelta(minutes=50)))
    john = store.conversation("x:2")
    assert john.state == "answered" and john.response_seconds == 50 * 60 and john.answered_by == "sara"  # type: ignore[union-attr]
    alerts = told(t + timedelta(minutes=60))
    assert alerts == [("sla_breach:x:1", "care"), ("sla_escalation:x:1:1", "supervisors")]
    anna = store.conversation("x:1")
    assert anna.assignee == "giulia" and anna.breach_handed_on  # nobody else with billing is free: kept  # type: ignore[union-attr]
    store.conversations.acknowledge("x:1", "supervisor", t + timedelta(minutes=70))
    assert ("sla_escalation:x:1:2", "managers") not in told(t + timedelta(minutes=125))


def test_a_returning_author_goes_back_to_who_answered_them_last(store: Store) -> None:
    settings = team_settings()
    t = rome(2, 10)
    store_at(store, t, said("1", t, "Where is my parcel?", author=JOHN, language="en"))
    triage(settings, store, t)
    store_at(store, t + timedelta(minutes=20), answer("901", to="1", at=t + timedelta(minutes=20)))
    later = rome(2, 15)  # marco (0 open) and sara both on shift; sara has more work now
    store_at(
        store,
        later,
        said("2", later, "Where is my parcel? order 2", author=Author("x", "55", "zoe"), language="en"),
        said("3", later + timedelta(minutes=1), "parcel broken again", author=JOHN, language="en"),
    )
    triage(settings, store, later + timedelta(minutes=1))
    assert store.conversation("x:2").assignee == "marco"  # type: ignore[union-attr]  # least loaded with the skill
    assert store.conversation("x:3").assignee == "sara"  # type: ignore[union-attr]  # returning author
    reason = next(e[3] for e in store.conversations.events("x:3") if e[1] == "assigned")
    assert reason == "returning author: answered them last"


def test_nobody_off_shift_gets_work_and_the_queue_waits_for_the_morning(store: Store) -> None:
    settings = team_settings()
    night = rome(2, 21)
    store_at(store, night, said("1", night, "addebito sbagliato"))
    triage(settings, store, night)
    assert store.conversation("x:1").assignee == ""  # type: ignore[union-attr]
    triage(settings, store, rome(3, 7, 59))
    assert store.conversation("x:1").assignee == ""  # type: ignore[union-attr]
    triage(settings, store, rome(3, 8))
    assert store.conversation("x:1").assignee == "giulia"  # type: ignore[union-attr]


def test_items_move_on_when_their_owner_goes_away_or_off_shift(store: Store) -> None:
    settings = team_settings()
    t = rome(2, 13, 30)  # giulia and marco both on shift
    store_at(store, t, said("1", t, "addebito"), said("2", t + timedelta(seconds=1), "addebito 2"))
    triage(settings, store, t)
    owners = {store.conversation(k).assignee for k in ("x:1", "x:2")}  # type: ignore[union-attr]
    assert owners == {"giulia", "marco"}
    store.conversations.set_away("marco", True, "supervisor", t)
    triage(settings, store, t + timedelta(minutes=1))
    assert {store.conversation(k).assignee for k in ("x:1", "x:2")} == {"giulia"}  # type: ignore[union-attr]
    triage(settings, store, rome(2, 14))  # giulia's shift ends; marco is still away: back to the queue
    assert {store.conversation(k).assignee for k in ("x:1", "x:2")} == {""}  # type: ignore[union-attr]
    assert store.conversation("x:1").state == "new"  # type: ignore[union-attr]


def test_a_burst_beyond_capacity_fills_each_member_oldest_first_and_waits(store: Store) -> None:
    settings = team_settings(capacity=3)
    t = rome(2, 10)  # only giulia serves billing now
    burst = [said(str(i), t + timedelta(seconds=i), f"doppio addebito {i}") for i in range(10)]
    store_at(store, t + timedelta(minutes=1), *burst)
    triage(settings, store, t + timedelta(minutes=1))
    assigned = [c.mention.platform_id for c in store.conversations.open_items() if c.assignee]
    assert assigned == ["0", "1", "2"] and store.conversations.workloads() == {"giulia": 3}
    store.conversations.mark_answered("x:0", "giulia", t + timedelta(minutes=5))
    triage(settings, store, t + timedelta(minutes=6))
    assert store.conversation("x:3").assignee == "giulia" and store.conversations.workloads() == {"giulia": 3}  # type: ignore[union-attr]


def test_a_follow_up_reopens_with_the_next_response_target_and_measures_satisfaction(store: Store) -> None:
    t = rome(2, 10)
    store_at(store, t, said("1", t, "pacco rotto!", sentiment="negative", thread="T"))
    settings = TriageSettings(next_response_minutes=30)
    triage(settings, store, t)
    store_at(store, t + timedelta(minutes=20), answer("9", to="1", at=t + timedelta(minutes=20)))
    store_at(
        store,
        t + timedelta(minutes=40),
        said("2", t + timedelta(minutes=40), "grazie, risolto", thread="T", sentiment="positive"),
    )
    triage(settings, store, t + timedelta(minutes=40))
    follow_up = store.conversation("x:2")
    assert follow_up.state == "reopened" and follow_up.follows_key == "x:1"  # type: ignore[union-attr]
    assert follow_up.due_at == t + timedelta(minutes=70)  # type: ignore[union-attr]
    table = figures(store.conversations.between(t - timedelta(days=1), t + timedelta(hours=1)), t + timedelta(hours=1))
    assert table["all"]["all"].satisfaction == 2 and table["channel"]["x"].follow_ups == 1


def test_figures_give_median_p90_and_compliance(store: Store) -> None:
    t = rome(2, 10)
    store_at(store, t, *[said(str(i), t) for i in range(10)])
    triage(TriageSettings(), store, t)
    for i, minutes in enumerate((5, 10, 15, 20, 25, 30, 40, 50, 70, 90)):
        store.conversations.mark_answered(
            f"x:{i}", "giulia", t + timedelta(hours=2), answered_at=t + timedelta(minutes=minutes)
        )
    f = figures(store.conversations.between(t - timedelta(days=1), t + timedelta(hours=3)), t + timedelta(hours=3))
    overall = f["all"]["all"]
    assert overall.median_seconds == 27.5 * 60 and overall.p90_seconds == pytest.approx(72 * 60)
    assert overall.compliance == 0.8 and f["member"]["giulia"].answered == 10


def test_marking_an_unknown_mention_is_a_clear_error(store: Store) -> None:
    with pytest.raises(KeyError):
        store.conversations.mark_answered("x:nope", "giulia", rome(2, 10))


def test_a_mention_heard_days_after_it_was_written_stays_to_answer_with_no_sla_clock(store: Store) -> None:
    now = rome(2, 10)
    store_at(store, now, said("old", now - timedelta(days=400), "Il pacco è arrivato rotto"), said("new", now))
    triage(TriageSettings(), store, now)
    old, new = store.conversation("x:old"), store.conversation("x:new")
    assert old is not None and old.is_open and old.due_at is None and old.warn_at is None
    assert old.state_reason == "heard 400 days after it was written: no SLA clock (triage.late_after_hours)"
    assert new is not None and new.due_at is not None
    alerts = list(Unanswered().evaluate(store, now + timedelta(hours=3)))
    assert any("x:new" in a.key for a in alerts) and not any("x:old" in a.key for a in alerts)


def test_the_last_answerer_is_who_answered_last_until_that_answer_is_undone(store: Store) -> None:
    from storage.people import delete_mentions
    from storage.writes import writing

    t = rome(2, 10)
    store_at(store, t, *(said(str(i), t + timedelta(minutes=i), f"parcel {i}?", author=JOHN) for i in (1, 2, 3)))
    convs = store.conversations
    convs.mark_answered("x:1", "giulia", t + timedelta(minutes=30))
    convs.mark_answered("x:2", "marco", t + timedelta(minutes=40))
    convs.mark_answered("x:3", "sara", t + timedelta(minutes=35))  # answered before marco's
    assert convs.last_answerers([JOHN.key], t) == {JOHN.key: "marco"}
    assert convs.last_answerers([JOHN.key], t + timedelta(minutes=41)) == {}  # none since then
    store.db.execute("UPDATE conversations SET state = 'reopened' WHERE key = 'x:2'")  # marco's answer undone
    store.db.conn.commit()
    assert convs.last_answerers([JOHN.key], t) == {JOHN.key: "sara"}
    with writing(store.db):
        delete_mentions(store.db, ["x:3"], with_alerts=False)
    assert convs.last_answerers([JOHN.key], t) == {JOHN.key: "giulia"}
    with writing(store.db):
        delete_mentions(store.db, ["x:1"], with_alerts=False)
    assert convs.last_answerers([JOHN.key], t) == {}
