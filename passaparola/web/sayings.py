"""English the code writes, said again in the page's language.

The rules title their alerts in English (the e-mail keeps that title), the draft check and the actions explain
themselves in English (the API and the CLI show that text), the activity log and the score keep English details.
The pages read those texts back by pattern and say them from the catalogue (`passaparola.web.i18n`): the parts
that are data (a handle, a number, a key) stay as they are, isolated; a text no pattern reads is shown as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from passaparola.web.i18n import MESSAGES, translate


@dataclass(frozen=True, slots=True)
class Phrase:
    """One English text the code writes: its ``pattern`` (named groups are its parts), the message ``key`` that
    says it (its placeholders are the group names), and the parts that are catalogue words (``words``: group ->
    the prefix of their message ids, "" for none; "*" reads the part again with the same phrases)."""

    pattern: re.Pattern[str]
    key: str
    words: Mapping[str, str] = field(default_factory=dict)


#: The ``words`` prefix of a part that is a number of minutes, said as a human duration ("1 h 30 min").
DURATION = "=minutes"

#: A piece of a text said again: (its text, whether it is data to show as is, in isolation).
Part = tuple[str, bool]


def _phrase(regex: str, key: str, **words: str) -> Phrase:
    return Phrase(re.compile(regex, re.S), key, words)


_WHO = r"(?P<who>.+) on (?P<channel>[\w.-]+)"
_FOLLOW = r"(?P<t_follow>first response|next response)"
ALERT_TITLES: dict[str, tuple[Phrase, ...]] = {  # by alert kind: rules/unanswered.py, spikes.py, negative.py...
    "sla_warning": (
        _phrase(
            rf"(?P<left>\d+) min left to answer {_WHO} \({_FOLLOW}, target (?P<target>\d+) min\)",
            "title_sla_warning",
            t_follow="follow",
            left=DURATION,
            target=DURATION,
        ),
    ),
    "sla_breach": (
        _phrase(
            r"No answer after (?P<target>\d+) min \(\+(?P<late>\d+) min\): " + _WHO,
            "title_sla_breach",
            target=DURATION,
            late=DURATION,
        ),
    ),
    "sla_escalation": (
        _phrase(
            r"Escalation (?P<number>\d+): still no answer (?P<late>\d+) min past the deadline: " + _WHO,
            "title_sla_escalation",
            late=DURATION,
        ),
    ),
    "volume_spike": (
        _phrase(
            r"Mention spike: (?P<count>\d+) in (?P<window>\d+) min, about (?P<expected>[\d.]+) expected",
            "title_volume_spike",
            window=DURATION,
        ),
    ),
    "negative_spike": (
        _phrase(
            r"Negative spike: (?P<share>\d+%) of (?P<count>\d+) mentions negative in (?P<window>\d+) min, "
            r"usually (?P<usual>\d+%)",
            "title_negative_spike",
            window=DURATION,
        ),
    ),
    "negative_mention": (
        _phrase(
            r"Negative mention by (?P<who>.+) \((?P<reach>[\d,]+) followers\) on (?P<channel>[\w.-]+)",
            "title_negative_mention",
        ),
    ),
    "source_failing": (
        _phrase(r"Source (?P<source>.+) is failing \((?P<count>\d+) polls in a row\)", "title_source_failing"),
        _phrase(r"Source (?P<source>.+) stopped reading: its monthly read budget is spent", "title_source_budget"),
    ),
    "source_silent": (
        _phrase(
            r"Source (?P<source>.+) silent for (?P<hours>\d+) h \(usually at most (?P<usual>\d+) h\)",
            "title_source_silent",
        ),
    ),
    "daily_digest": (
        _phrase(
            r"Daily digest (?P<day>\S+): (?P<count>\d+) mentions, (?P<open>\d+) open, (?P<overdue>\d+) overdue",
            "title_daily_digest",
        ),
    ),
    "vip_promotion": (_phrase(r"New VIP: (?P<who>.+)", "title_vip_promotion"),),
    "advocate_mention": (
        _phrase(
            r"(?P<t_tier>[A-Z]+) (?P<who>.+) praised us on (?P<channel>[\w.-]+)",
            "title_advocate_mention",
            t_tier="tier",
        ),
    ),
    "disk_full": (_phrase(r"Passaparola cannot write: the disk is full", "title_disk_full"),),
    "summary": (_phrase(r"(?P<count>\d+) alerts held back on (?P<route>.+)", "title_summary"),),
}

_QUOTED = "['\"](?P<{}>.*)['\"]"  # a value the code wrote with !r
FINDINGS: dict[str, tuple[Phrase, ...]] = {  # by finding code: rules/engagement.py
    "banned_term": (_phrase(_QUOTED.format("term") + " must never be used; rephrase", "finding_banned_term"),),
    "discouraged_term": (
        _phrase("avoid " + _QUOTED.format("term") + "; say " + _QUOTED.format("better"), "finding_discouraged_term"),
    ),
    "missing_greeting": (_phrase(r"open with a greeting \(e\.g\. (?P<example>.+)\)", "finding_missing_greeting"),),
    "missing_signature": (
        _phrase(r"say who signs: pass the agent \(--member\)", "finding_missing_signer"),
        _phrase(r"sign the reply at the end: (?P<signature>.+)", "finding_missing_signature"),
    ),
    "missing_apology": (
        _phrase(r"this answers a complaint: apologise \(e\.g\. (?P<example>.+)\)", "finding_missing_apology"),
    ),
    "missing_reference": (
        _phrase(
            r"a (?P<team>.+) reply needs a reference number \(e\.g\. (?P<example>.+)\)", "finding_missing_reference"
        ),
    ),
    "too_long": (
        _phrase(r"(?P<length>\d+) characters; (?P<channel>.+) allows (?P<limit>\d+): shorten it", "finding_too_long"),
    ),
    "same_channel": (
        _phrase(
            r"answer on (?P<channel>\S+) in reply to (?P<url>\S+), where the customer spoke", "finding_same_channel_url"
        ),
        _phrase(r"answer on (?P<channel>\S+), where the customer spoke", "finding_same_channel"),
    ),
}

_ROLE = "agent|supervisor|admin"
REFUSALS: tuple[Phrase, ...] = (  # passaparola/actions, passaparola/web: the pages' error messages and flashes
    _phrase("no mention " + _QUOTED.format("key") + "; keys look like .*", "refused_no_mention"),
    _phrase(r"no person (?P<person>\S+); .*", "refused_no_person"),
    _phrase("no author " + _QUOTED.format("author") + "; .*", "refused_no_author"),
    _phrase(
        "member=" + _QUOTED.format("member") + r" is not in \[\[triage\.members\]\]; known: (?P<known>.+)",
        "refused_member",
    ),
    _phrase(r"agents assign mentions to themselves only; ask a supervisor", "refused_self_only"),
    _phrase(
        r"(?P<key>\S+) is already (?P<t_state>\w+); only open mentions can be (?P<t_doing>.+)",
        "refused_not_open",
        t_state="",
        t_doing="doing",
    ),
    _phrase(r"say why it needs no answer: .*", "refused_reason"),
    _phrase("label=" + _QUOTED.format("label") + r" is not one of (?P<labels>.+)", "refused_label"),
    _phrase("no action " + _QUOTED.format("action") + r"; use one of (?P<actions>.+)", "refused_action"),
    _phrase(
        "bulk action " + _QUOTED.format("action") + r" is not offered; use one of (?P<actions>.+)", "refused_action"
    ),
    _phrase(r"select at least one mention", "refused_select"),
    _phrase(r"(?P<n>\d+) mentions selected; one bulk action takes at most (?P<most>\d+)", "refused_too_many"),
    _phrase(
        rf"(?P<name>.+) is (?P<t_role>{_ROLE}); .* needs (?P<t_needed>{_ROLE}) or above",
        "refused_role",
        t_role="role",
        t_needed="role",
    ),
    _phrase(r"missing or wrong CSRF token; .*", "refused_csrf"),
    _phrase(r"the draft is empty; write the reply first", "refused_draft_empty"),
    _phrase(r"log in, or send Authorization: .*", "refused_login"),
    _phrase(r"only a supervisor can override the house rules; fix the reply or ask one", "refused_override"),
    _phrase(r"a reply is signed by a member: .*", "refused_signer"),
    _phrase(r"only a supervisor approves or rejects replies", "refused_review_role"),
    _phrase(r"say why it is rejected: .*", "refused_reject_reason"),
    _phrase(r"reply (?P<id>\d+) was reviewed by someone else meanwhile", "refused_reviewed"),
    _phrase(r"reply (?P<id>\d+) is (?P<state>.+), not waiting for approval", "refused_not_pending"),
    _phrase(
        "no saved reply " + _QUOTED.format("name") + r"; known: (?P<known>.+) \(\[\[engagement\.saved\]\]\)",
        "refused_saved",
    ),
    _phrase(
        r"(?P<name>\S+): type the order or ticket number \(reference\), then fill it in again",
        "refused_saved_reference",
    ),
    _phrase(
        r"(?P<channel>\w+) budget: \$(?P<spent>[\d.]+) of \$(?P<limit>[\d.]+) spent this month .*",
        "refused_budget",
    ),
    _phrase(r"the house rules block this reply: .*", "refused_blocked"),
    _phrase(r"(?P<why>.+): copy the reply, post it on (?P<channel>\w+) yourself .*", "refused_manual"),
)

DETAILS: tuple[Phrase, ...] = (  # the activity log's details: storage/conversations.py, rules/triage.py `assign`
    _phrase(r"brand reply (?P<key>\S+)", "detail_brand_reply"),
    _phrase(r"follows up (?P<key>\S+)", "detail_follows_up"),
    _phrase(r"marked by hand", "detail_by_hand"),
    _phrase(r"assigned by (?P<name>.+)", "detail_assigned_by"),
    _phrase(r"revoked by (?P<name>.+)", "detail_revoked_by"),
    _phrase(r"returning author: answered them last", "detail_returning"),
    _phrase(r"least loaded with (?P<team>\S+) skill \((?P<n>\d+) open\)", "detail_least_loaded"),
    _phrase(
        r"(?P<owner>\S+) is (?P<t_why>away|off shift|no longer a member); (?P<r_rest>.+)",
        "detail_handed_on",
        t_why="why",
        r_rest="*",
    ),
    _phrase(r"SLA breached with (?P<owner>\S+); (?P<r_rest>.+)", "detail_breached_with", r_rest="*"),
    _phrase(r"back in the queue", "detail_back_in_queue"),
    _phrase(r"nobody else free, kept", "detail_kept"),
    _phrase(r"answered from passaparola \((?P<key>\S+)\)", "detail_answered_here"),
    _phrase(r"reply written, sending", "detail_reply_sending"),
    _phrase(r"reply written, waiting for approval", "detail_reply_waiting"),
    _phrase(r"reply copied to post by hand", "detail_reply_copied"),
    _phrase(r"reply copied and posted by hand", "detail_reply_copied"),
    _phrase(
        r"(?P<r_rest>reply written, .+); house rules overridden by (?P<name>.+): (?P<reason>.+)",
        "detail_reply_override",
        r_rest="*",
    ),
    _phrase(r"sent \((?P<key>\S+)\)", "detail_sent"),
    _phrase(r"deleted on the platform", "detail_deleted"),
    _phrase(r"(?P<t_problem>[a-z_]+): (?P<error>.+)", "detail_reply_failed", t_problem="reply_problem"),
)

EXCLUSIONS: tuple[Phrase, ...] = (  # why a mention does not count: rules/advocates.py `score_person`
    _phrase(r"the brand's own account or an employee", "excluded_brand"),
    _phrase(r"self-promotion \((?P<cue>.+)\)", "excluded_self_promotion"),
    _phrase(r"neutral", "excluded_neutral"),
    _phrase(r"a near-duplicate of a mention already counted", "excluded_duplicate"),
    _phrase(r"past the burst cap of (?P<n>\d+) a day", "excluded_burst"),
)

STATUSES: tuple[Phrase, ...] = (  # an alert's status: passaparola/web/service.py `cockpit`
    _phrase(r"sent", "alert_sent"),
    _phrase(r"pending", "alert_pending"),
    _phrase(r"held: (?P<reason>.+)", "alert_held", reason="hold"),
)

BOOKS: dict[str, tuple[Phrase, ...]] = {
    "refusal": REFUSALS,
    "detail": DETAILS,
    "excluded": EXCLUSIONS,
    "status": STATUSES,
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def phrases(book: str, code: str = "") -> tuple[Phrase, ...]:
    """The phrases of ``book``: alert titles and findings by their kind or ``code``, the others whole."""
    if book == "alert":
        return ALERT_TITLES.get(code, ())
    if book == "finding":
        return FINDINGS.get(code, ())
    return BOOKS[book]


def _slug(value: str) -> str:
    return re.sub(r"\W+", "_", value.strip().lower()).strip("_")


def _number(value: str, language: str) -> str:
    """A number the code wrote in English, with Italian separators on Italian pages (4.1 -> 4,1; 1,200 -> 1.200)."""
    if language == "it" and re.fullmatch(r"\d+\.\d+", value):
        return value.replace(".", ",")
    if language == "it" and re.fullmatch(r"\d{1,3}(,\d{3})+", value):
        return value.replace(",", ".")
    return value


def duration(minutes: int, language: str) -> str:
    """Minutes as people say them, as the pages' ``duration`` macro does: "45 min", "2 h 10 min", "3 g 4 h"."""
    m = abs(minutes)
    mins, hours, days = (translate(k, language) for k in ("minutes", "hours_short", "days_short"))
    if m < 60:
        return f"{m} {mins}"
    if m < 2880:
        return f"{m // 60} {hours}" + (f" {m % 60} {mins}" if m % 60 else "")
    rest = (m % 1440) // 60
    return f"{m // 1440} {days}" + (f" {rest} {hours}" if rest else "")


def say(found: tuple[Phrase, ...], text: str, language: str) -> list[Part] | None:
    """``text`` said again in ``language``, as parts; None when none of the phrases reads it."""
    for phrase in found:
        match = phrase.pattern.fullmatch(text.strip())
        if match is None:
            continue
        parts: list[Part] = []
        template, at = translate(phrase.key, language), 0
        for slot in _PLACEHOLDER.finditer(template):
            if slot.start() > at:
                parts.append((template[at : slot.start()], False))
            name, at = slot.group(1), slot.end()
            value = match.groupdict().get(name) or ""
            prefix = phrase.words.get(name)
            if prefix == "*":
                parts += say(found, value, language) or [(value, True)]
            elif prefix == DURATION and value.isdigit():
                parts.append((duration(int(value), language), False))
            elif prefix is not None:
                key = f"{prefix}_{_slug(value)}" if prefix else _slug(value)
                parts.append((translate(key, language), False) if key in MESSAGES else (value, True))
            else:
                parts.append((_number(value, language), True))
        if at < len(template):
            parts.append((template[at:], False))
        return parts
    return None


def said_text(book: str, text: str, language: str, code: str = "") -> str:
    """The plain text of `say` (for a flash message, an SVG title); ``text`` itself when no phrase reads it."""
    parts = say(phrases(book, code), text, language)
    return text if parts is None else "".join(piece for piece, _ in parts)
