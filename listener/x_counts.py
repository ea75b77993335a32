"""X's own hourly counts of the search query, for the volume baseline's first days.

``/2/tweets/counts/recent`` goes seven days back on the first poll, then each new whole hour; the hours come with
the poll as `Poll.history`, before passaparola has history of its own. It never fails the poll: a plan without
counts (403) is told once in the log and asked again after a day, a 429 waits for its reset.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy

from listener.model import HourCount, RateLimited, SourceError
from listener.x_api import XApi, json_kind, x_time

#: The X source's own logger: what operators filter on, whichever module of the source speaks.
log = logging.getLogger("listener.x")

#: Tweet counts: X's own hourly counts of the query, seven days back, for the volume baseline's first days.
COUNTS_PATH = "/2/tweets/counts/recent"
COUNTS_REACH = timedelta(days=7)
#: Only whole hours that ended at least this long ago are asked for (X wants ``end_time`` 10 s in the past).
COUNTS_LAG = timedelta(seconds=30)
COUNTS_MAX_PAGES = 10
#: A plan without tweet counts is asked again after a day: plans change, but not by the minute.
NO_COUNTS_PAUSE = timedelta(days=1)
#: After any other failed counts fetch: the next try comes with the next hour, as it would anyway.
COUNTS_RETRY = timedelta(hours=1)
HOUR = timedelta(hours=1)


def _counts_problem(body: Any) -> str:
    """What is wrong with the shape of a tweet counts page ("" if nothing)."""
    if not isinstance(body, dict):
        return f"the body is {json_kind(body)}, not an object"
    for name, kind in (("data", list), ("meta", dict), ("errors", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            return f"'{name}' is {json_kind(body[name])}, not {json_kind(kind())}"
    if "meta" not in body and "data" not in body and "errors" not in body:
        return "it has neither 'data' nor 'meta'"
    token = (body.get("meta") or {}).get("next_token")
    if token is not None and not isinstance(token, str | int):
        return f"'meta.next_token' is {json_kind(token)}, not a string"
    return ""


def _start_of_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _stamp(moment: datetime) -> str:
    """A time as X's ``start_time``/``end_time`` want it: ``YYYY-MM-DDTHH:mm:ssZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucket(bucket: Any) -> HourCount | None:
    """One bucket of a counts page as a whole hour; None for a partial hour or a bucket of the wrong shape."""
    try:
        start, end, count = x_time(bucket["start"]), x_time(bucket["end"]), bucket["tweet_count"]
        if not isinstance(count, int) or isinstance(count, bool) or end - start != HOUR:
            return None
        return HourCount(start, count)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


class _NoCounts(Exception):
    """X answered 403 to tweet counts: the plan does not include them. Not a failure of the poll."""


def counts_history(
    api: XApi, name: str, query: str, state: dict[str, Any], now: datetime
) -> tuple[tuple[HourCount, ...], str]:
    """X's hourly counts of ``query`` (the source's `counts_query`): seven days back on the first poll, then only
    the whole hours since the last one fetched (so at most once an hour). Never fails the poll: a plan without
    counts is told once and asked again after a day, a 429 waits for its reset, anything else for the next hour.

    Returns the hours and a note for the source's health ("" when all is well).
    """
    counts: dict[str, Any] = dict(state.get("counts") or {})
    paused = counts.get("paused_until")
    if paused and datetime.fromisoformat(paused) > now:
        return (), "no access on this plan" if counts.get("no_access") else f"paused until {paused}"
    end = _start_of_hour(now - COUNTS_LAG)
    start = _start_of_hour(now - COUNTS_REACH) + HOUR  # X refuses a start_time more than seven days back
    if counts.get("until"):
        start = max(start, datetime.fromisoformat(counts["until"]))
    if start >= end:
        return (), ""
    note = ""
    found: list[HourCount] = []
    try:
        found, complete = _read_counts(api, name, query, start, end, now)
    except _NoCounts as error:
        if not counts.get("no_access"):
            log.warning(
                "x source %s: your X plan has no access to tweet counts; spike baselines will build from "
                "passaparola's own history (X answered 403: %s). passaparola asks again in a day",
                name,
                error,
            )
        counts.update(no_access=True, paused_until=(now + NO_COUNTS_PAUSE).isoformat())
        note = "no access on this plan"
    except tweepy.TooManyRequests as error:
        reset = api.resume_at(error, now)
        counts["paused_until"] = reset.isoformat()
        log.warning("x source %s: tweet counts rate-limited until %s", name, reset.isoformat())
        note = f"paused until {reset.isoformat()}"
    except RateLimited as error:
        counts["paused_until"] = error.retry_at.isoformat()
        log.warning("x source %s: tweet counts paused until %s: %s", name, error.retry_at.isoformat(), error)
        note = f"paused until {error.retry_at.isoformat()}"
    except SourceError as error:
        counts["paused_until"] = (now + COUNTS_RETRY).isoformat()
        log.warning("x source %s: tweet counts not read, next try in an hour: %s", name, error)
        note = f"not read: {error}"[:300]
    else:
        if counts.pop("no_access", None):
            log.info("x source %s: X's tweet counts are available now; spike baselines use them", name)
        counts.pop("paused_until", None)
        # A page cap that stopped early: carry on from the last hour received, never skip hours.
        reached = max((c.hour + HOUR for c in found), default=start)
        counts["until"] = end.isoformat() if complete else max(reached, start).isoformat()
        if not complete and reached <= start:
            counts["paused_until"] = (now + COUNTS_RETRY).isoformat()
    state["counts"] = counts
    return tuple(found), note


def _read_counts(
    api: XApi, name: str, query: str, start: datetime, end: datetime, now: datetime
) -> tuple[list[HourCount], bool]:
    """Every page of hourly counts in [start, end), following ``meta.next_token`` up to `COUNTS_MAX_PAGES`:
    (the whole hours, whether it reached the last page)."""
    client = api.client()

    def request(**params: Any) -> requests.Response:
        # tweepy 4.17's get_recent_tweets_count does not know next_token; its request() sends what it is given.
        try:
            return client.request("GET", COUNTS_PATH, params={k: v for k, v in params.items() if v is not None})
        except tweepy.Forbidden as error:
            raise _NoCounts(api.mask("; ".join(error.api_messages))[:200] or "Forbidden") from None

    found: list[HourCount] = []
    token: str | None = None
    for _ in range(COUNTS_MAX_PAGES):
        body = api.call(
            now,
            _counts_problem,
            request,
            query=query,
            granularity="hour",
            start_time=_stamp(start),
            end_time=_stamp(end),
            next_token=token,
        )
        for bucket in body.get("data") or []:
            hour = _bucket(bucket)
            if hour is None:
                log.debug("x source %s: counts bucket skipped (partial or of the wrong shape): %r", name, bucket)
                continue
            found.append(hour)
        token = (body.get("meta") or {}).get("next_token")
        if not token:
            return found, True
        token = str(token)
    return found, False
