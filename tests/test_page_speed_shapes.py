"""The shapes the inbox takes to stay fast at 100k mentions (#19, `make bench`) show the same rows as before: a deep
page read keys first, a search whose total is counted only up to a cap. Speed itself is measured by the bench,
never here; these tests shrink the thresholds so a small store takes the same paths."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener import Author, Mention, Poll
from listener.model import Conversation
from passaparola.actions import listing
from storage import Store, board
from storage.board import InboxFilter
from storage.times import iso
from tests.webkit import Site, serve

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WORDS = ("caffè", "consegna", "capsule", "prezzo", "latte", "orari")


def fill(store: Store, count: int = 320, ties: bool = False, seed: int = 5) -> list[Mention]:
    """``count`` triaged mentions on three channels, in every state, two languages, with searchable words; with
    ``ties``, many share the same second."""
    rng = random.Random(seed)
    authors = [Author(p, str(i), f"a{i}", f"A {i}") for i in range(4) for p in ("x", "forum", "facebook")]
    mentions = []
    for n in range(count):
        author = rng.choice(authors)
        at = NOW - timedelta(minutes=rng.randrange(5) * 60 if ties else n * 7 + rng.randrange(5))
        tags = {"language": rng.choice(["it", "en"]), "sentiment": rng.choice(["negative", "neutral", "positive"])}
        text = " ".join(rng.sample(WORDS, 2)) + f" numero {n}"
        mentions.append(Mention(author.platform, f"p{n}", "test", text, at, author, tags=tags))
    store.save_poll("test", "test", Poll(mentions=tuple(mentions)), NOW)
    for m in mentions:
        store.db.execute(
            "UPDATE conversations SET state = ?, triaged_at = ? WHERE key = ?",
            [rng.choice(["new", "answered", "answered", "ignored"]), iso(NOW) if rng.random() < 0.95 else None, m.key],
        )
    store.db.conn.commit()
    return mentions


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store of a few hundred mentions where a listing of more than 10 walks the date index (as more than 2000
    do at 100k) and a search counts up to 25 (as up to 1000 do)."""
    monkeypatch.setattr(board, "DENSE", 10)
    monkeypatch.setattr(listing, "COUNT_CAP", 25)
    store = Store.memory()
    yield store
    store.close()


FILTERS = [
    InboxFilter(state="all"),
    InboxFilter(state="answered"),
    InboxFilter(state="answered", channel="x"),
    InboxFilter(state="all", sentiment="negative", channel="facebook"),
    InboxFilter(state="all", language="en"),
    InboxFilter(state="all", q="capsule", language="en"),
    InboxFilter(state="ignored", q="consegna"),
]


def keys(found: list[Conversation]) -> list[str]:
    return [c.mention.key for c in found]


@pytest.mark.parametrize("f", FILTERS, ids=repr)
def test_a_deep_page_read_keys_first_is_the_page_the_whole_query_gave(small: Store, f: InboxFilter) -> None:
    fill(small)
    where, params = small.board._inbox_where(f)
    total = small.board.inbox(f, limit=0)[1]
    assert total > board.DENSE  # the date walk, keys first
    for offset in range(0, total + 50, 17):
        whole = small.conversations.query(where, params, order="m.published_at DESC", limit=50, offset=offset)
        assert keys(small.board.inbox(f, limit=50, offset=offset)[0]) == keys(whole), offset


def test_equal_times_page_by_key_so_no_row_is_missed_or_shown_twice(small: Store) -> None:
    fill(small, ties=True)
    f = InboxFilter(state="all")
    total = small.board.inbox(f, limit=0)[1]
    seen = [key for offset in range(0, total, 20) for key in keys(small.board.inbox(f, limit=20, offset=offset)[0])]
    where, params = small.board._inbox_where(f)
    every = small.conversations.query(where, params, order="m.published_at DESC, m.key DESC")
    assert seen == keys(every) and len(set(seen)) == total


def test_a_search_counts_up_to_the_cap_and_says_so(small: Store) -> None:
    fill(small)
    f = InboxFilter(state="all", q="capsule")
    matches = len(small.conversations.query(*small.board._inbox_where(f)))
    assert matches > 2 * listing.PAGE_SIZE > listing.COUNT_CAP
    first = listing.inbox(small, NOW, f, 1)
    assert (first["total"], first["total_capped"], first["pages"]) == (25, True, 2)
    assert listing.inbox(small, NOW, f, 2)["pages"] == 3  # a full page: one more follows
    every = list(listing.queue(small, NOW, f))  # the CLI's queue still reads to the end
    assert len(every) == matches == len({row["key"] for row in every})
    last = listing.inbox(small, NOW, f, -(-matches // listing.PAGE_SIZE))  # where it ends is the total
    assert (last["total"], last["total_capped"], last["pages"]) == (matches, False, last["page"])
    beyond = listing.inbox(small, NOW, f, 40)
    assert (beyond["items"], beyond["total_capped"], beyond["pages"]) == ([], True, 1)
    few = InboxFilter(state="all", q="capsule", language="en", channel="forum")
    exact = listing.inbox(small, NOW, few, 1)
    assert exact["total_capped"] is False and exact["total"] == len(
        small.conversations.query(*small.board._inbox_where(few))
    )
    plain = listing.inbox(small, NOW, InboxFilter(state="all"), 1)  # not a search: counted to the end
    assert plain["total_capped"] is False and plain["total"] > listing.COUNT_CAP


def test_a_capped_search_lists_the_rows_an_uncapped_one_lists(small: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(small)
    f = InboxFilter(state="all", q="latte", language="it")
    capped = [listing.inbox(small, NOW, f, page)["items"] for page in (1, 2, 3)]
    monkeypatch.setattr(listing, "COUNT_CAP", 10_000)
    monkeypatch.setattr(board, "DENSE", 2000)
    assert [listing.inbox(small, NOW, f, page)["items"] for page in (1, 2, 3)] == capped


@pytest.fixture
def site(demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    with serve(demo_db, tmp_path) as running:
        yield running


def test_the_page_and_the_api_say_the_total_is_capped(site: Site) -> None:
    api = site.client("agent")
    found = api.get("/api/inbox", params={"state": "all", "q": "aurora"}).json()
    assert (found["total"], found["total_capped"], found["pages"]) == (5, True, 2)
    assert api.get("/api/inbox").json()["total_capped"] is False
    page = site.login("sara").get("/inbox", params={"state": "all", "q": "aurora"}).text
    title = "Più di 5: una ricerca conta i risultati fino a 5"
    assert f'<h1>Da rispondere <small title="{title}">5+</small></h1>' in page
    assert re.search(r"Pagina 1 / 2\+", page)
