"""The JSON API and the pages' security, against the real web app on 127.0.0.1 over the replayed demo: roles,
tokens, CSRF, the inbox's SLA order, filters and search, the actions, the cockpit, exports, OpenAPI, metrics."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from passaparola.config import ConfigError, UserSettings, WebSettings
from passaparola.web.api import ENDPOINTS
from passaparola.web.auth import Gate
from passaparola.web.i18n import MESSAGES
from tests.conftest import PASSAPAROLA, settings_from
from tests.webkit import PASSWORD, TOKENS, Site, csrf_of, serve

HOSTILE_KEY = "facebook:fa-00154"  # the demo's <script>, javascript: and RTL-override comment


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def test_nobody_gets_in_without_a_session_or_token(site: Site) -> None:
    anonymous = site.client()
    assert anonymous.get("/api/inbox").status_code == 401
    assert anonymous.get("/api/inbox").headers["www-authenticate"] == "Bearer"
    assert anonymous.get("/inbox").headers["location"] == "/login?next=%2Finbox"
    assert anonymous.get("/api/inbox", headers={"Authorization": "Bearer not-a-real-token"}).status_code == 401
    assert anonymous.get("/metrics").status_code == 401
    bad = anonymous.post(
        "/login", data={"csrf": csrf_of(anonymous.get("/login").text), "name": "sara", "password": "x"}
    )
    assert bad.status_code == 401 and "passaparola" not in bad.cookies


def test_roles_limit_what_an_agent_and_a_supervisor_may_do(site: Site) -> None:
    agent, supervisor = site.client("agent"), site.client("supervisor")
    assert agent.get("/api/inbox").status_code == 200
    refused = agent.get("/api/cockpit")
    assert refused.status_code == 403 and "needs supervisor" in refused.json()["error"]
    assert agent.get("/api/advocates/export").status_code == 403
    assert supervisor.get("/api/cockpit").status_code == 200
    assert supervisor.get("/api/cockpit", params={"days": "9"}).json()["error"].startswith("days=9 is not offered")
    assert supervisor.get("/metrics").status_code == 403
    assert site.client("admin").get("/metrics").status_code == 200
    # a logged-in agent assigns to themselves, never to a colleague
    giulia = site.login("giulia")
    key = giulia.get("/api/inbox").json()["items"][0]["key"]
    headers = {"X-CSRF-Token": giulia.get("/api/me").json()["csrf"]}
    other = giulia.post(f"/api/mentions/{key}/assign", json={"member": "marco"}, headers=headers)
    assert other.status_code == 403 and "themselves" in other.json()["error"]
    mine = giulia.post(f"/api/mentions/{key}/assign", json={"member": "giulia"}, headers=headers)
    assert mine.status_code == 200 and mine.json()["assignee"] == "giulia"


def test_session_writes_without_the_csrf_token_are_refused(site: Site) -> None:
    sara = site.login("sara")
    key = sara.get("/api/inbox").json()["items"][0]["key"]
    assert sara.post(f"/api/mentions/{key}/answered").status_code == 403
    page = sara.post(f"/mentions/{key}/act", data={"action": "answered"})
    assert page.status_code == 403 and "CSRF" in page.text
    forged = sara.post(f"/mentions/{key}/act", data={"action": "answered", "csrf": "x" * 43})
    assert forged.status_code == 403
    assert site.store.conversation(key).state != "answered"  # nothing happened
    login = site.client().post("/login", data={"name": "sara", "password": PASSWORD})
    assert login.status_code == 403  # the log-in form is protected too


def test_the_inbox_lists_open_mentions_most_urgent_first_with_filters(site: Site) -> None:
    api = site.client("agent")
    inbox = api.get("/api/inbox").json()
    open_count = site.store.counts()["open"]
    assert inbox["total"] == open_count > 0
    due = [i["due_at"] for i in inbox["items"] if i["due_at"]]
    assert due == sorted(due) and len(due) > 10
    assert {i["state"] for i in inbox["items"]} <= {"new", "assigned", "reopened"}
    negative = api.get("/api/inbox", params={"sentiment": "negative", "channel": "x"}).json()["items"]
    assert negative and all(i["sentiment"] == "negative" and i["channel"] == "x" for i in negative)
    mine = api.get("/api/inbox", params={"assignee": "giulia"}).json()["items"]
    assert all(i["assignee"] == "giulia" for i in mine)
    bad = api.get("/api/inbox", params={"channel": "myspace"})
    assert bad.status_code == 400 and "x, forum" in bad.json()["error"]


@pytest.mark.parametrize("query", ['caffè" OR (', "caffe", "CAFFÈ*", "NEAR(", '"', "-- ; DROP TABLE"])
def test_search_with_fts_syntax_returns_results_never_an_error(site: Site, query: str) -> None:
    found = site.client("agent").get("/api/inbox", params={"q": query, "state": "all"})
    assert found.status_code == 200
    if "caff" in query.lower():
        items = found.json()["items"]
        assert items and all("caff" in i["text"].lower() for i in items)  # accents folded both ways
    page = site.login("giulia").get("/inbox", params={"q": query})
    assert page.status_code == 200


def test_actions_change_the_inbox_and_the_cockpit(site: Site) -> None:
    api = site.client("supervisor")
    before = api.get("/api/cockpit", params={"days": 7}).json()["figures"]["all"]["all"]["open"]
    key = api.get("/api/inbox").json()["items"][0]["key"]
    answered = api.post(f"/api/mentions/{key}/answered")
    assert answered.status_code == 200 and answered.json()["state"] == "answered"
    assert key not in [i["key"] for i in api.get("/api/inbox").json()["items"]]
    assert api.get("/api/cockpit", params={"days": 7}).json()["figures"]["all"]["all"]["open"] == before - 1
    again = api.post(f"/api/mentions/{key}/answered")
    assert again.status_code == 409 and "already answered" in again.json()["error"]
    corrected = api.post(f"/api/mentions/{key}/sentiment", json={"label": "positive"})
    assert corrected.json()["sentiment"] == "positive" and site.store.mentions.tags(key)["sentiment"] != ""
    assert api.post(f"/api/mentions/{key}/sentiment", json={"label": "angry"}).status_code == 400
    second = api.get("/api/inbox").json()["items"][0]["key"]
    assert api.post(f"/api/mentions/{second}/ignore", json={}).status_code == 400
    assert api.post(f"/api/mentions/{second}/ignore", json={"reason": "spam"}).json()["state"] == "ignored"
    acked = api.post(f"/api/mentions/{HOSTILE_KEY}/ack").json()
    assert acked["acknowledged_by"] == "supervisor-bot"
    bulk = api.post("/api/bulk", json={"keys": [key, "x:nope"], "action": "assign", "member": "marco"}).json()
    assert bulk["done"] == [] and len(bulk["failed"]) == 2  # answered, and unknown: each says why
    assert api.get("/api/mentions/x:nope").status_code == 404
    events = [e["event"] for e in api.get(f"/api/mentions/{key}").json()["events"]]
    assert "answered" in events


def test_a_hostile_mention_renders_inert_on_every_page(site: Site) -> None:
    sara = site.login("sara")
    pages = [f"/mentions/{HOSTILE_KEY}", "/inbox?channel=facebook", "/cockpit", "/advocates", "/sources"]
    for path in pages:
        response = sara.get(path)
        html = response.text
        assert response.status_code == 200, path
        assert "<script" not in html.lower() and "<b>leak</b>" not in html, path
        assert "javascript:" not in re.findall(r'href="([^"]*)"', html), path
        assert all(h.startswith(("/", "http://", "https://", "?")) for h in re.findall(r'href="([^"]*)"', html)), path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    view = sara.get(f"/mentions/{HOSTILE_KEY}").text
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in view
    assert "\u202e" not in view and "\\u202e" in view  # the RTL override is shown, not obeyed
    assert "<bdi>@&lt;script&gt;alert(1)&lt;/script&gt;</bdi>" in view


def test_advocate_export_over_http_is_spreadsheet_safe(site: Site) -> None:
    api = site.client("supervisor")
    response = api.get("/api/advocates/export", params={"format": "csv", "tier": "advocate"})
    assert response.headers["content-disposition"].startswith('attachment; filename="advocates-')
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows and all(r["tier"] == "advocate" for r in rows)
    ranked = api.get("/api/advocates").json()["advocates"]
    assert [r["person_id"] for r in ranked] == sorted(
        (r["person_id"] for r in ranked), key=lambda p: -next(x["score"] for x in ranked if x["person_id"] == p)
    )
    explained = api.get(f"/api/advocates/{ranked[0]['person_id']}/explain").json()
    assert abs(sum(t["value"] for t in explained["terms"]) - explained["score"]) < 0.01
    assert api.get("/api/advocates/export", params={"format": "xlsx"}).status_code == 400


def test_the_openapi_description_matches_what_is_served(site: Site) -> None:
    spec = site.client().get("/api/openapi.json").json()
    validate(spec)
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert described == {(e.method, e.path) for e in ENDPOINTS}
    admin = site.client("admin")
    for method, path in described:
        if method == "GET" and "{" not in path:
            assert admin.get(path).status_code == 200, path
    assert admin.get("/api/nothing-here").status_code == 404


def test_metrics_and_health(site: Site) -> None:
    text = site.client("admin").get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ingested = {s.labels["source"]: s.value for s in families["passaparola_mentions_ingested"].samples}
    assert ingested == {"demo": 334.0}
    states = {s.labels["sla_state"]: s.value for s in families["passaparola_unanswered"].samples}
    assert sum(states.values()) == site.store.counts()["open"] and states["breached"] > 0
    assert {"source:demo", "rules", "outbox"} <= {
        s.labels["job"] for s in families["passaparola_job_duration_seconds"].samples
    }
    sent = {s.labels["kind"]: s.value for s in families["passaparola_alerts_sent"].samples if s.name.endswith("_total")}
    assert sent["sla_breach"] > 0
    assert "passaparola_heartbeat_age_seconds" in families or site.store.health.heartbeat() is None


def test_pages_speak_italian_by_default_and_english_on_request(site: Site) -> None:
    assert all(it and en for it, en in MESSAGES.values())
    sara = site.login("sara")
    assert "<h1>Da rispondere" in sara.get("/inbox").text
    assert "<h1>Inbox" in sara.get("/inbox", params={"lang": "en"}).text
    assert "<h1>Cockpit" in sara.get("/cockpit").text  # the choice is remembered
    assert "Mentions per hour" in sara.get("/cockpit").text


def test_logging_out_ends_the_session(site: Site) -> None:
    sara = site.login("sara")
    token = csrf_of(sara.get("/inbox").text)
    assert sara.post("/logout", data={"csrf": token}).status_code == 303
    assert sara.get("/api/inbox").status_code == 401


def test_tokens_never_need_csrf_and_json_bodies_are_checked(site: Site) -> None:
    api = site.client("agent")
    assert api.post("/api/bulk", content=b"[1,2]", headers={"content-type": "application/json"}).status_code == 400
    assert api.post("/api/bulk", content=b"keys=1", headers={"content-type": "text/plain"}).status_code == 415
    assert api.post("/api/bulk", json={"keys": "x:1", "action": "answered"}).status_code == 400
    me = httpx.get(site.url + "/api/me", headers={"Authorization": f"Bearer {TOKENS['agent']}"})
    assert me.json()["role"] == "agent" and me.headers["cache-control"] == "no-store"


def test_people_and_tokens_in_the_config_are_checked(tmp_path: Path) -> None:
    text = """
[web]
language = "fr"
session_secret = "short"

[[web.users]]
name = "sara"
role = "boss"
password_hash = "hunter2"

[[web.tokens]]
name = "bot"
token = "abc"
"""
    with pytest.raises(ConfigError) as refused:
        settings_from(text, tmp_path)
    problems = "\n".join(refused.value.problems)
    assert "web.language: 'fr' is not offered; use it or en" in problems
    assert "web.session_secret: shorter than 32 characters" in problems
    assert "web.users[0].role: 'boss' is not a role; use one of agent, supervisor, admin" in problems
    assert "web.users[0].password_hash: not an argon2 hash; make one with `passaparola hash-password`" in problems
    assert "web.tokens[0].token: shorter than 24 characters" in problems
    assert "hunter2" not in problems


def test_hash_password_prints_an_argon2_hash_that_logs_in(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PASSAPAROLA, "hash-password", "--stdin"], input="a long enough secret\n", capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("$argon2id$")
    user = UserSettings(name="x", role="agent", password_hash=SecretStr(result.stdout.strip()), member="")
    assert Gate(WebSettings(users=[user])).login("x", "a long enough secret") is not None
    short = subprocess.run([*PASSAPAROLA, "hash-password", "--stdin"], input="short\n", capture_output=True, text=True)
    assert short.returncode == 2 and "shorter than 10 characters" in short.stderr


def test_the_teach_page_lists_the_days_least_sure_mentions_and_labels_them_in_one_click(site: Site) -> None:
    api = site.client("agent")
    items = api.get("/api/teach").json()["items"]
    assert 0 < len(items) <= 10
    certainties = [i["certainty"] for i in items]
    assert certainties == sorted(certainties)  # least sure first
    assert len({i["text"] for i in items}) == len(items)  # a repeated text is asked once
    unsure = items[0]
    probabilities = sorted(unsure["probabilities"].values(), reverse=True)
    assert abs((probabilities[0] - probabilities[1]) - unsure["certainty"]) < 1e-3

    sara = site.login("sara")
    page = sara.get("/teach")
    assert page.status_code == 200 and "Insegna" in page.text and unsure["key"] in page.text.replace("%3A", ":")
    labelled = sara.post(
        f"/mentions/{unsure['key']}/act",
        data={"csrf": csrf_of(page.text), "action": "sentiment", "label": "negative", "back": "/teach"},
    )
    assert labelled.status_code == 303 and labelled.headers["location"] == "/teach"
    assert site.store.mentions.tags(unsure["key"])["corrected"] is True
    after = api.get("/api/teach").json()
    assert unsure["key"] not in [i["key"] for i in after["items"]] and after["corrections"] == 1
