"""The webhooks, served by the real web app on 127.0.0.1: the Facebook Page handshake and signed notifications,
the authenticated intake, and both ingested through the same path as polling, never stored twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from passaparola import config as configuration
from passaparola.pipeline import ingest_inbound, poll_source, triage
from passaparola.web import WebServer, create_app
from storage import Store
from tests.conftest import FIXTURES, PASSAPAROLA, T0, FixedClock, cli_env, settings_from
from tests.graphapi import PAGE_ID, FakeGraph

APP_SECRET = "app-secret-SENTINEL-123"
VERIFY = "verify-me-please"
INTAKE = "intake-token-0123456789abcdef"
BODY = (FIXTURES / "facebook" / "webhook_feed.json").read_bytes()

CONFIG = """
[storage]
path = "{db}"

[web]
port = 0
intake_token = {{ env = "INTAKE_TOKEN" }}
max_body_bytes = 4096

[[sources]]
type = "facebook"
name = "page"
page_id = "{page}"
access_token = {{ env = "FB_TOKEN" }}
app_secret = {{ env = "FB_APP_SECRET" }}
verify_token = {{ env = "FB_VERIFY" }}
base_url = "{base_url}"
"""
ENV = {"INTAKE_TOKEN": INTAKE, "FB_TOKEN": "EAAG-token", "FB_APP_SECRET": APP_SECRET, "FB_VERIFY": VERIFY}


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    page = json.loads((FIXTURES / "facebook" / "page.json").read_text(encoding="utf-8"))
    yield from FakeGraph(posts=page["posts"], comments=page["comments"]).serve()


@pytest.fixture
def settings(tmp_path: Path, graph: FakeGraph) -> configuration.Settings:
    text = CONFIG.format(db=tmp_path / "p.db", page=PAGE_ID, base_url=graph.base_url)
    return settings_from(text, tmp_path, environ=ENV)


@pytest.fixture
def web(settings: configuration.Settings) -> Iterator[tuple[httpx.Client, Store]]:
    shared = Store.open(settings.storage.path, shared=True)
    server = WebServer(create_app(settings, shared, lambda: T0), "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            yield client, shared
    finally:
        server.stop()
        shared.close()


def inbound_rows(store: Store) -> int:
    return int(store.db.execute("SELECT count(*) FROM inbound").fetchone()[0])


def test_the_verify_token_handshake(web: tuple[httpx.Client, Store]) -> None:
    client, _ = web
    ok = client.get("/webhooks/facebook/page", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                                       "hub.challenge": "1158201444"})  # fmt: skip
    assert ok.status_code == 200 and ok.text == "1158201444" and ok.headers["content-type"].startswith("text/plain")
    wrong = client.get("/webhooks/facebook/page", params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                                          "hub.challenge": "1"})  # fmt: skip
    assert wrong.status_code == 403
    assert client.get("/webhooks/facebook/nope", params={"hub.mode": "subscribe"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (BODY.replace(b"ritardo", b"anticipo"), sign(BODY)),  # a flipped body under the old signature
        (BODY, sign(BODY, "wrong-secret")),
        (BODY, "sha1=" + hmac.new(APP_SECRET.encode(), BODY, hashlib.sha1).hexdigest()),
        (BODY, None),
        (BODY, "sha256=zz"),
        (json.dumps(json.loads(BODY)).encode(), sign(BODY)),  # re-serialised: the bytes differ
    ],
    ids=["flipped", "wrong-secret", "sha1-only", "missing", "garbage", "reserialised"],
)
def test_a_forged_notification_stores_nothing(web: tuple[httpx.Client, Store], body: bytes, signature: str) -> None:
    client, store = web
    headers = {"Content-Type": "application/json", **({"X-Hub-Signature-256": signature} if signature else {})}
    response = client.post("/webhooks/facebook/page", content=body, headers=headers)
    assert response.status_code == 403 and "X-Hub-Signature-256" in response.json()["error"]
    assert inbound_rows(store) == 0


def test_webhook_and_polling_feed_one_ingest_path_and_never_double_store(
    web: tuple[httpx.Client, Store], settings: configuration.Settings
) -> None:
    client, store = web
    [spec] = settings.sources
    poll_source(spec, store, [], T0, 60, 900, random.Random(1))
    polled = store.counts()["mentions"]
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(BODY)}
    first = client.post("/webhooks/facebook/page", content=BODY, headers=headers)
    replay = client.post("/webhooks/facebook/page", content=BODY, headers=headers)
    assert (first.status_code, first.json()) == (200, {"status": "queued"})
    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"}) and inbound_rows(store) == 1
    assert ingest_inbound(store, [], {"page": PAGE_ID}, T0) == 1
    assert store.counts()["mentions"] == polled + 1  # Luisa's comment was polled already; Giorgio's is new
    giorgio = store.conversation("facebook:2002_306")
    assert giorgio is not None and "<script>" in giorgio.mention.text and giorgio.mention.thread_id == "1000000001_2002"
    luisa = store.conversation("facebook:2002_303")
    assert luisa is not None and luisa.state == "answered" and luisa.response_seconds == 35 * 60  # the Page replied
    assert ingest_inbound(store, [], {"page": PAGE_ID}, T0) == 0


def test_a_body_too_big_or_not_a_page_webhook_is_refused(web: tuple[httpx.Client, Store]) -> None:
    client, store = web
    batched = b'{"object": "page", "entry": [], "pad": "' + b"x" * 5000 + b'"}'  # over web.max_body_bytes (4096)
    response = client.post("/webhooks/facebook/page", content=batched, headers={"X-Hub-Signature-256": sign(batched)})
    assert response.status_code == 200  # Meta's batched deliveries may be larger than the intake's cap
    big = b'{"object": "page", "entry": [], "pad": "' + b"x" * (2 << 20) + b'"}'
    response = client.post("/webhooks/facebook/page", content=big, headers={"X-Hub-Signature-256": sign(big)})
    assert response.status_code == 413
    other = b'{"object": "instagram", "entry": []}'
    response = client.post("/webhooks/facebook/page", content=other, headers={"X-Hub-Signature-256": sign(other)})
    assert response.status_code == 400 and "not a Page webhook" in response.json()["error"]
    assert inbound_rows(store) == 1  # the batched delivery alone


def item(ident: str, **overrides: object) -> dict[str, object]:
    return {
        "id": ident,
        "text": "Il modulo dei commenti sul sito non salva la mia recensione",
        "published_at": "2026-03-02T09:55:00+01:00",
        "author": "Carla B.",
        "channel": "site",
        "url": "https://aurora.example/blog/miscela#c-" + ident,
        **overrides,
    }


def test_intake_needs_the_bearer_token_json_and_a_valid_schema(web: tuple[httpx.Client, Store]) -> None:
    client, store = web
    good = {"Authorization": f"Bearer {INTAKE}"}
    assert client.post("/intake", json=item("c1")).status_code == 401
    wrong = client.post("/intake", json=item("c1"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    form = client.post("/intake", content=b"id=c1", headers={**good, "Content-Type": "text/plain"})
    assert form.status_code == 415
    bad = client.post(
        "/intake",
        json=[
            item("c1"),
            item("c2", published_at="yesterday"),
            item("c3", author={"name": "x"}),
            item("c4", url="javascript:alert(1)"),
        ],
        headers=good,
    )  # fmt: skip
    assert bad.status_code == 422
    problems = bad.json()["problems"]
    assert [p.split(":")[0] for p in problems] == ["item 1", "item 2", "item 3"]
    assert "published_at 'yesterday' is not an ISO 8601 time" in problems[0]
    assert inbound_rows(store) == 0  # all or nothing
    huge = client.post("/intake", json=item("c1", text="x" * 5000), headers=good)
    assert huge.status_code == 413 and inbound_rows(store) == 0


def test_intake_is_idempotent_on_the_callers_id_and_lands_as_site_mentions(web: tuple[httpx.Client, Store]) -> None:
    client, store = web
    good = {"Authorization": f"Bearer {INTAKE}"}
    first = client.post("/intake", json=[item("c1"), item("c2")], headers=good)
    assert first.status_code == 202
    assert [r["status"] for r in first.json()["results"]] == ["accepted", "accepted"]
    again = client.post("/intake", json=item("c1", text="changed"), headers=good)
    assert again.json()["results"] == [{"id": "c1", "key": "site:c1", "status": "duplicate"}]
    assert ingest_inbound(store, [], {}, T0) == 2
    triage(configuration.load(None, environ={}).triage, store, T0)
    stored = store.conversation("site:c1")
    assert stored is not None and stored.mention.text.startswith("Il modulo") and stored.state == "new"
    assert stored.due_at == stored.mention.published_at + timedelta(minutes=60)


@pytest.mark.parametrize(
    "authorization",
    [INTAKE, f"Token {INTAKE}", f"Bearer{INTAKE}", "Bearer", f"Basic {INTAKE}"],
    ids=["bare-token", "other-scheme", "no-space", "no-token", "basic"],
)
def test_intake_refuses_anything_but_authorization_bearer_token(
    web: tuple[httpx.Client, Store], authorization: str
) -> None:
    client, store = web
    response = client.post("/intake", json=item("c1"), headers={"Authorization": authorization})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <web.intake_token>" in response.json()["error"]
    assert INTAKE not in response.text and inbound_rows(store) == 0


def test_intake_takes_the_bearer_scheme_in_any_case(web: tuple[httpx.Client, Store]) -> None:
    client, store = web
    for number, scheme in enumerate(["bearer", "BEARER", "Bearer"]):
        response = client.post("/intake", json=item(f"c{number}"), headers={"Authorization": f"{scheme} {INTAKE}"})
        assert response.status_code == 202, response.text
    assert inbound_rows(store) == 3


def raw_item(**fields: str) -> bytes:
    """An intake body written by hand, so that ``\\ud83d`` reaches the server as JSON's escape of half an emoji."""
    values = {"id": "c9", "text": "Ottimo", "published_at": "2026-03-02T09:55:00+01:00", "author": "Carla B.", **fields}
    return ("{" + ", ".join(f'"{k}": "{v}"' for k, v in values.items()) + "}").encode()


def test_a_lone_surrogate_refuses_an_id_naming_it_and_is_cleaned_from_text(web: tuple[httpx.Client, Store]) -> None:
    client, store = web
    good = {"Authorization": f"Bearer {INTAKE}", "Content-Type": "application/json"}
    assert client.post("/intake", json=item("c1"), headers=good).status_code == 202
    for body, field in [
        (raw_item(id="c\\ud83d"), "id"),
        (raw_item(url="https://aurora.example/\\ude00"), "url"),
        (raw_item(**{"te\\ud83dxt": "x"}), "the field name"),
    ]:
        refused = client.post("/intake", content=body, headers=good)
        assert refused.status_code == 400, refused.text
        [problem] = refused.json()["problems"]
        assert problem.startswith(f"item 0: {field} ") and "lone surrogate" in problem
    assert inbound_rows(store) == 1  # the earlier item is still queued, nothing else
    cleaned = client.post("/intake", content=raw_item(text="Grazie \\ud83d", author="Sofia \\ud83d"), headers=good)
    assert cleaned.status_code == 202 and cleaned.json()["results"][0]["status"] == "accepted"
    assert ingest_inbound(store, [], {}, T0) == 2
    stored = store.conversation("site:c9")
    assert stored is not None and stored.mention.text == "Grazie ?" and stored.mention.author.handle == "Sofia ?"
    assert store.conversation("site:c1") is not None


def test_healthz_tells_a_stale_loop_from_a_live_one(settings: configuration.Settings) -> None:
    """With the loop in the same process (`passaparola run`), no heartbeat or an old one is a 503."""
    shared = Store.open(settings.storage.path, shared=True)
    clock = FixedClock(T0)
    server = WebServer(create_app(settings, shared, clock, daemon=True), "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            none_yet = client.get("/healthz")
            assert none_yet.status_code == 503 and none_yet.json()["failing"] == ["heartbeat"]
            shared.health.beat(T0)
            live = client.get("/healthz").json()
            assert live["status"] == "ok" and live["heartbeat_age_seconds"] == 0.0
            assert set(live["checks"]) == {"database", "migrations", "heartbeat"}
            clock.now = T0 + timedelta(seconds=settings.web.heartbeat_max_age_seconds + 1)
            assert client.get("/healthz").status_code == 503
    finally:
        server.stop()
        shared.close()


def test_healthz_of_the_web_app_alone_needs_no_loop(web: tuple[httpx.Client, Store]) -> None:
    client, _ = web
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["checks"]["database"]["ok"] is True


def test_passaparola_web_serves_until_sigterm(tmp_path: Path, graph: FakeGraph) -> None:
    config = tmp_path / "p.toml"
    config.write_text(CONFIG.format(db=tmp_path / "p.db", page=PAGE_ID, base_url=graph.base_url), encoding="utf-8")
    with subprocess.Popen(
        [*PASSAPAROLA, "web", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**ENV),
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline().rsplit(":", 1)[1])
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert response.status_code == 200 and response.json()["status"] == "ok"  # the web app alone is healthy
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
        finally:
            process.kill()
    assert process.returncode == 0 and APP_SECRET not in stderr


def test_a_bad_queued_body_is_kept_with_its_error_and_a_database_failure_loses_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.inbound.receive("facebook", "page", [("facebook:bad", '{"object": "user"}')], T0)
    store.inbound.receive("intake", "intake", [("site:c1", json.dumps(item("c1")))], T0)
    monkeypatch.setattr(
        store, "save_poll", lambda *a, **k: (_ for _ in ()).throw(sqlite3.OperationalError("disk full"))
    )
    assert ingest_inbound(store, [], {"page": PAGE_ID}, T0) == 0
    rows = store.db.execute("SELECT dedupe_key, processed_at IS NOT NULL, error FROM inbound ORDER BY id").fetchall()
    assert rows[0][:2] == ("facebook:bad", 1) and "not a Page webhook" in rows[0][2]
    assert rows[1][:2] == ("site:c1", 0)  # still queued
    monkeypatch.undo()
    assert ingest_inbound(store, [], {"page": PAGE_ID}, T0) == 1 and store.conversation("site:c1") is not None
