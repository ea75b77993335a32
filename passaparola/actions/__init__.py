"""What a person can do to a mention or a person, defined once for every door: the CLI, the pages, the JSON API.

Each action checks its preconditions once (the mention is known, still open where that matters, the member is
configured, the caller's role allows it), does it, and returns the conversation as it now is; or raises
`Refusal`, which says what is wrong and what to do. The doors only translate: a refusal's ``status`` is the
HTTP status on the web, and exit code 2 with its message on the command line. Listings (the queue the CLI
prints, the inbox the pages and the API show) are one query and one row shape, in `passaparola.actions.listing`.
Answering (the house rules, sending exactly once, approval, out-of-hours replies) is `passaparola.actions.replies`.
"""

from passaparola.actions.base import RANK, Actor, Refusal, operator
from passaparola.actions.mentions import BULK_ACTIONS, MENTION_ACTIONS, Bulk, MentionActions, assignable
from passaparola.actions.people import PeopleActions
from passaparola.actions.replies import ReplyActions, ReplyBlocked

__all__ = [
    "BULK_ACTIONS",
    "MENTION_ACTIONS",
    "RANK",
    "Actor",
    "Bulk",
    "MentionActions",
    "PeopleActions",
    "Refusal",
    "ReplyActions",
    "ReplyBlocked",
    "assignable",
    "operator",
]
