"""What an app review says about where it was written (#21): the App Store's territory, Google Play's app version,
phone and Android, kept as the mention's facts through storage, shown on the mention page (escaped) and in the API;
and a review its author edits is read again."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from listener.googleplay import GooglePlaySource
from listener.model import Author, Mention, Poll
from passaparola.config import SourceSpec
from passaparola.pipeline import poll_source
from rules.analysis import AnalysisSettings, Analyzer
from storage import Store
from tests.appstoreapi import APP, CLUB, FakeAppStore
from tests.conftest import FIXTURES, T0
from tests.playapi import FakePlay
from tests.test_analysis import SETTINGS
from tests.test_listener_appstore import GIULIA as ASC_GIULIA
from tests.test_listener_appstore import KEY, LONDON
from tests.test_listener_appstore import source as appstore_source
from tests.test_listener_googleplay import APP as PLAY_APP
from tests.test_listener_googleplay import CAPSULE, key, key_file
from tests.webkit import Site, serve

MARTA = "gp:AOqpTOGaurora0001marta"  # 1.2.0 on a Samsung Galaxy A52, Android 14 (SDK 34)
GIULIA = "gp:AOqpTOGaurora0003giulia"  # five stars, 1.1.8; Play sent no deviceMetadata, only the codename


@pytest.fixture
def play() -> Iterator[FakePlay]:
    listed = json.loads((FIXTURES / "googleplay" / "reviews.json").read_text(encoding="utf-8"))
    good = key("a1b2c3")
    double = FakePlay(
        reviews={package: body["reviews"] for package, body in listed.items()},
        keys={good.kid: good.private.public_key()},
    )
    yield from double.serve()


@pytest.fixture
def apple() -> Iterator[FakeAppStore]:
    yield from FakeAppStore.from_fixtures(KEY.public_key()).serve()


def play_source(play: FakePlay) -> GooglePlaySource:
    return GooglePlaySource(
        name="play",
        service_account=SecretStr(key_file(play.token_uri)),
        packages=(PLAY_APP, CAPSULE),
        developer_name="Caffè Aurora",
        base_url=play.base_url,
    )


def stored(store: Store, key: str) -> Mention:
    found = store.conversation(key)
    assert found is not None, key
    return found.mention


def test_a_google_play_review_keeps_its_app_version_phone_and_android(play: FakePlay, store: Store) -> None:
    heard = play_source(play).poll(None, T0)
    marta = next(m for m in heard.mentions if m.platform_id == MARTA)
    assert marta.facts == {"app_version": "1.2.0", "device": "Samsung Galaxy A52", "android": "34"}
    giulia = next(m for m in heard.mentions if m.platform_id == GIULIA)
    assert giulia.facts == {"app_version": "1.1.8", "device": "OP5913L1", "android": "33"}

    store.save_poll("play", "googleplay", heard, T0)
    assert stored(store, f"googleplay:{MARTA}").facts == marta.facts

    # Marta updates the app and edits her review from another phone: the stored facts follow.
    play.edit(
        MARTA,
        "\tCon la 1.2.1 funziona di nuovo, grazie.",
        4,
        T0 + timedelta(hours=1),
        appVersionName="1.2.1",
        appVersionCode=121,
        androidOsVersion=35,
        device="husky",
        deviceMetadata={"productName": "husky (Pixel 8 Pro)", "manufacturer": "Google"},
    )
    play.now = T0 + timedelta(hours=2)
    again = play_source(play).poll(store.cursor("play"), T0 + timedelta(hours=2))
    store.save_poll("play", "googleplay", again, T0 + timedelta(hours=2))
    assert stored(store, f"googleplay:{MARTA}").facts == {
        "app_version": "1.2.1",
        "device": "Google Pixel 8 Pro",
        "android": "35",
    }


def test_an_app_store_review_keeps_its_territory(apple: FakeAppStore, store: Store) -> None:
    heard = appstore_source(apple).poll(None, T0)
    by_id = {m.platform_id: m for m in heard.mentions}
    assert by_id[ASC_GIULIA].facts == {"territory": "ITA"}
    assert by_id[LONDON].facts == {"territory": "GBR"}
    store.save_poll("appstore", "appstore", heard, T0)
    assert stored(store, f"appstore:{LONDON}").facts == {"territory": "GBR"}


def test_an_app_store_review_keeps_the_app_version_it_was_written_for(apple: FakeAppStore, store: Store) -> None:
    apple.add_version(APP, "v-118", "1.1.8", T0 - timedelta(days=60))
    apple.add_version(APP, "v-120", "1.2.0", T0 - timedelta(days=20))
    apple.add_version(APP, "v-121", "1.2.1", T0 - timedelta(days=2))
    apple.written_on(ASC_GIULIA, "v-121")
    apple.written_on(LONDON, "v-118")  # an old version, beyond the two newest asked for

    heard = appstore_source(apple, versions=2).poll(None, T0)
    by_id = {m.platform_id: m for m in heard.mentions}
    assert by_id[ASC_GIULIA].facts == {"territory": "ITA", "app_version": "1.2.1"}
    assert by_id[LONDON].facts == {"territory": "GBR"}
    asked = [r["path"] for r in apple.requests if "appStoreVersions" in r["path"]]
    assert asked == [
        f"/v1/apps/{APP}/appStoreVersions",
        "/v1/appStoreVersions/v-121/customerReviews",
        "/v1/appStoreVersions/v-120/customerReviews",
        f"/v1/apps/{CLUB}/appStoreVersions",  # Aurora Club has no version listed: nothing more is asked
    ]
    store.save_poll("appstore", "appstore", heard, T0)
    assert stored(store, f"appstore:{ASC_GIULIA}").facts["app_version"] == "1.2.1"


def test_app_versions_apple_will_not_list_leave_the_reviews_heard(apple: FakeAppStore) -> None:
    apple.add_version(APP, "v-121", "1.2.1", T0 - timedelta(days=2))
    apple.written_on(ASC_GIULIA, "v-121")
    apple.forbidden_versions = True
    heard = appstore_source(apple, versions=3).poll(None, T0)
    assert {m.platform_id: m.facts for m in heard.mentions}[ASC_GIULIA] == {"territory": "ITA"}
    assert "versions_unread" in heard.details


def test_without_versions_no_version_is_asked_for(apple: FakeAppStore) -> None:
    apple.add_version(APP, "v-121", "1.2.1", T0 - timedelta(days=2))
    appstore_source(apple).poll(None, T0)
    assert not [r for r in apple.requests if "appStoreVersions" in r["path"]]


def test_a_mention_without_facts_reads_back_with_none(store: Store) -> None:
    said = Mention("x", "1", "x", "ciao", T0, Author("x", "9", "someone"))
    store.save_poll("x", "x", Poll(mentions=(said,)), T0)
    assert stored(store, "x:1").facts == {}
    row = store.db.execute("SELECT facts FROM mentions WHERE key = 'x:1'").fetchone()
    assert row[0] == "{}"


def test_the_facts_stay_out_of_the_search_index(store: Store) -> None:
    said = Mention(
        "googleplay", "r1", "play", "la consegna è lenta", T0, Author("googleplay", "r1", "Anna"),
        facts={"device": "Zanzibar Phone"},
    )  # fmt: skip
    store.save_poll("play", "googleplay", Poll(mentions=(said,)), T0)
    columns = [row[1] for row in store.db.execute("PRAGMA table_info(mentions_fts)").fetchall()]
    assert columns == ["text"]
    assert store.db.execute("SELECT count(*) FROM mentions_fts WHERE mentions_fts MATCH 'Zanzibar'").fetchone()[0] == 0


# -- shown ------------------------------------------------------------------------------------------


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def shown_review(site: Site, facts: dict[str, str], platform: str = "googleplay") -> str:
    said = Mention(
        platform, "facts-1", "play", "L'app si chiude al pagamento.", site.clock.now - timedelta(minutes=1),
        Author(platform, "facts-1", "Marta"), metrics={"rating": 1}, facts=facts,
    )  # fmt: skip
    site.store.save_poll("play", platform, Poll(mentions=(said,)), site.clock.now)
    return said.key


def test_the_mention_page_shows_the_facts_in_one_line_escaped(site: Site) -> None:
    key = shown_review(site, {"app_version": "4.2.1", "device": "Pixel <script>alert(1)</script>", "android": "34"})
    page = site.login("admin").get(f"/mentions/{key}", params={"lang": "en"})
    assert page.status_code == 200
    assert "App 4.2.1 · Pixel &lt;script&gt;alert(1)&lt;/script&gt; · Android 14" in page.text
    assert "<script>alert(1)" not in page.text
    assert "Version and device" in page.text


def test_the_territory_is_named_in_the_pages_language(site: Site) -> None:
    key = shown_review(site, {"territory": "ITA"}, platform="appstore")
    admin = site.login("admin")
    assert '<dd class="review-facts"><bdi>Italy</bdi></dd>' in admin.get(f"/mentions/{key}", params={"lang": "en"}).text
    italian = admin.get(f"/mentions/{key}", params={"lang": "it"}).text
    assert '<dd class="review-facts"><bdi>Italia</bdi></dd>' in italian and "Versione e dispositivo" in italian


def test_unknown_codes_show_as_given_and_a_mention_without_facts_shows_no_line(site: Site) -> None:
    key = shown_review(site, {"territory": "NOR", "android": "99"})
    page = site.login("admin").get(f"/mentions/{key}", params={"lang": "en"}).text
    assert "Android (API level 99) · NOR" in page
    plain = site.client("admin").get("/api/inbox").json()["items"][0]["key"]
    if plain != key:
        assert 'class="review-facts"' not in site.login("admin").get(f"/mentions/{plain}").text


def test_the_api_returns_the_facts(site: Site) -> None:
    facts = {"app_version": "4.2.1", "device": "Google Pixel 7", "android": "34"}
    key = shown_review(site, facts)
    body = site.client("admin").get(f"/api/mentions/{key}").json()
    assert body["mention"]["facts"] == facts


# -- an edited review is read again --------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(AnalysisSettings(**{**SETTINGS.__dict__, "mode": "fast", "threads": 1}))


def first_poll(play: FakePlay, store: Store, analyzer: Analyzer) -> tuple[SourceSpec, str]:
    """Giulia's five-star review, heard and read once at T0: the source and her review's key."""
    spec = SourceSpec("play", "googleplay", 300, play_source(play))
    play.now = T0
    poll_source(spec, store, [analyzer], T0, 60, 900, random.Random(1))
    return spec, f"googleplay:{GIULIA}"


def test_a_review_edited_from_five_stars_to_one_comes_out_negative(
    play: FakePlay, store: Store, analyzer: Analyzer
) -> None:
    spec, key = first_poll(play, store, analyzer)
    assert store.mentions.tags(key)["sentiment"] == "positive"  # type: ignore[index]
    before = store.conversation(key)
    assert before is not None

    later = T0 + timedelta(hours=3)
    play.edit(
        GIULIA,
        "\tDopo l'aggiornamento 1.2.0 l'app si chiude appena apro il carrello: non riesco più a ordinare. "
        "Pessima, una stella.",
        1,
        later - timedelta(hours=1),
        appVersionName="1.2.0",
        appVersionCode=120,
    )
    play.now = later
    poll_source(spec, store, [analyzer], later, 60, 900, random.Random(1))

    after = store.conversation(key)
    assert after is not None
    assert after.mention.metrics["rating"] == 1 and after.mention.text.startswith("Dopo l'aggiornamento")
    assert store.mentions.tags(key)["sentiment"] == "negative"  # type: ignore[index]
    assert after.mention.facts["app_version"] == "1.2.0"
    assert (after.state, after.seen_at) == (before.state, before.seen_at)


def test_an_edit_keeps_the_answer_and_drops_a_correction_of_the_old_words(
    play: FakePlay, store: Store, analyzer: Analyzer
) -> None:
    spec, key = first_poll(play, store, analyzer)
    store.mentions.correct_sentiment(key, "positive", "admin", T0)
    store.db.execute("UPDATE conversations SET state = 'answered', answered_by = 'giulia' WHERE key = ?", [key])
    store.db.conn.commit()

    later = T0 + timedelta(hours=3)
    play.edit(
        GIULIA, "\tL'app non funziona più: si blocca sempre al pagamento. Pessima.", 1, later - timedelta(hours=1)
    )
    play.now = later
    poll_source(spec, store, [analyzer], later, 60, 900, random.Random(1))

    after = store.conversation(key)
    assert after is not None and (after.state, after.answered_by) == ("answered", "giulia")
    tags: Any = store.mentions.tags(key)
    assert tags["sentiment"] == "negative" and "corrected" not in tags
    assert store.db.execute("SELECT count(*) FROM sentiment_corrections WHERE key = ?", [key]).fetchone()[0] == 0


def test_the_same_review_heard_again_unchanged_is_not_read_again(play: FakePlay, store: Store) -> None:
    class Counting:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]:
            self.seen.append(len(mentions))
            return [{"sentiment": "neutral"} for _ in mentions]

    tagger = Counting()
    spec = SourceSpec("play", "googleplay", 300, play_source(play))
    play.now = T0
    poll_source(spec, store, [tagger], T0, 60, 900, random.Random(1))
    poll_source(spec, store, [tagger], T0 + timedelta(minutes=10), 60, 900, random.Random(1))
    assert tagger.seen[0] > 0 and tagger.seen[1:] == [0]
