"""Issue #19 against the real web app over the replayed demo: every bad query parameter is a 400 that names it
(API and pages alike), URLs in answers are http(s) only, the OpenAPI description's schemas hold for real
answers, ``/metrics`` carries the cockpit's figures, and ``/healthz`` says what it checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from passaparola.web import WebServer, create_app
from passaparola.web.api import ENDPOINTS, error_codes
from passaparola.web.params import PARAMS
from storage import Store
from tests.conftest import FixedClock
from tests.webkit import NOW, TOKENS, Site, serve, web_settings

HOSTILE_KEY = "facebook:fa-00154"  # its thread has other comments and a brand answer
THREAD = "%facebook-thread-114%"

#: (query, how the 400's message begins: the parameter, then what is accepted)
BAD_INBOX = [
    ({"page": "99999999999999999999"}, "page='99999999999999999999' is not a page number; use 1 to 10000"),
    ({"page": "abc"}, "page='abc' is not a page number; use 1 to 10000"),
    ({"page": "0"}, "page='0' is not a page number; use 1 to 10000"),
    ({"page": "²"}, "page='²' is not a page number"),
    ({"limit": "5"}, "'limit' is not a parameter of /api/inbox; use q, channel, sentiment, team, assignee"),
    ({"since": "2026-01-01"}, "'since' is not a parameter of /api/inbox"),
    ({"vip": "maybe"}, "vip='maybe' is not yes or no; use one of 1, true, on, 0, false, off"),
    ({"q": "x" * 201}, "q is 201 characters long; use at most 200"),
]


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def error_of(html: str) -> str:
    found = re.search(r'<p class="flash error"[^>]*>(.*?)</p>', html, re.S)
    assert found, "no error message on the page"
    return found.group(1).replace("&#39;", "'")


@pytest.mark.parametrize(("query", "message"), BAD_INBOX)
def test_a_bad_inbox_parameter_is_a_400_naming_it_on_the_api_and_the_page(
    site: Site, query: dict[str, str], message: str
) -> None:
    refused = site.client("agent").get("/api/inbox", params=query)
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"].startswith(message)
    page = site.login("giulia").get("/inbox", params={**query, "lang": "en"})
    assert page.status_code == 400
    assert error_of(page.text).startswith(message.replace("/api/inbox", "/inbox"))


def test_the_error_page_speaks_the_pages_language(site: Site) -> None:
    giulia = site.login("giulia")
    italian = giulia.get("/inbox", params={"page": "99999999999999999999"})
    assert italian.status_code == 400 and "<h1>Errore 400" in italian.text
    assert error_of(italian.text) == "page='99999999999999999999' non è un numero di pagina; usa da 1 a 10000"
    english = giulia.get("/inbox", params={"vip": "perhaps", "lang": "en"})
    assert error_of(english.text).startswith("vip='perhaps' is not yes or no")


def test_every_endpoint_refuses_parameters_it_does_not_read(site: Site) -> None:
    admin = site.client("admin")
    assert admin.get("/api/me", params={"x": "1"}).json()["error"] == "'x' is not a parameter of /api/me; it takes none"
    assert admin.get("/api/inbox", params={"lang": "en"}).status_code == 400  # the pages' own, not the API's
    assert admin.post(f"/api/mentions/{HOSTILE_KEY}/ack", params={"force": "1"}).status_code == 400
    refused = admin.get("/api/advocates/export", params={"format": "json", "since": "2026-01-01"})
    assert refused.json()["error"].startswith("'since' is not a parameter of /api/advocates/export; use format, tier")
    sara = site.login("sara")
    assert sara.get("/cockpit", params={"hours": "3"}).status_code == 400
    assert sara.get("/sources", params={"lang": "en"}).status_code == 200
    assert sara.get("/login", params={"next": "/cockpit", "lang": "it"}).status_code == 200
    assert site.client().get("/login", params={"nxt": "/cockpit"}).status_code == 400
    anonymous = site.client()  # nobody learns what is accepted before logging in
    assert anonymous.get("/api/inbox", params={"page": "x"}).status_code == 401
    assert anonymous.get("/inbox", params={"page": "x"}).status_code == 303


def test_choices_numbers_and_repeats_are_checked_too(site: Site) -> None:
    supervisor = site.client("supervisor")
    assert supervisor.get("/api/cockpit", params={"days": "9"}).json()["error"] == (
        "days=9 is not offered; use one of 1, 7, 30"
    )
    assert supervisor.get("/api/cockpit", params={"days": "week"}).json()["error"].startswith("days='week' is not")
    assert (
        supervisor.get("/api/advocates", params={"tier": ["fan", "king"]})
        .json()["error"]
        .startswith("tier='king' is not offered; use one of fan, advocate, vip")
    )
    assert supervisor.get("/api/advocates", params={"tier": ["fan", "vip"]}).json()["tiers"] == ["fan", "vip"]
    for bad in ("lots", "nan", "inf"):
        refused = supervisor.get("/api/advocates/export", params={"min_score": bad})
        assert refused.json()["error"] == f"min_score='{bad}' is not a number; use e.g. 2.5"
    channel = supervisor.get("/api/inbox", params={"channel": "myspace"}).json()["error"]
    assert channel == (
        "channel='myspace' is not offered; use one of x, forum, facebook, review, web, site, import, gbp, appstore, "
        "googleplay, bluesky, mastodon, youtube"
    )
    team = site.login("sara").get("/inbox", params={"team": "sales", "lang": "en"})
    assert team.status_code == 400 and error_of(team.text).startswith("team='sales' is not offered; use one of ")
    twice = supervisor.get("/api/inbox", params=[("channel", "x"), ("channel", "forum")])
    assert twice.status_code == 400 and twice.json()["error"] == "channel is given 2 times; give it once"


def test_good_parameters_still_work_and_empty_ones_mean_any(site: Site) -> None:
    agent = site.client("agent")
    everything = agent.get("/api/inbox").json()
    blank = agent.get("/api/inbox", params={"q": "", "channel": "", "vip": "", "page": ""}).json()
    assert blank["total"] == everything["total"] and blank["page"] == 1
    assert agent.get("/api/inbox", params={"vip": "off"}).json()["total"] == everything["total"]
    assert agent.get("/api/inbox", params={"vip": "TRUE"}).json()["filters"]["vip"] is True
    last = agent.get("/api/inbox", params={"page": "10000"}).json()
    assert last["items"] == [] and last["page"] == 10000


def test_links_in_api_answers_are_http_only(site: Site) -> None:
    db = site.store.db
    db.execute("UPDATE mentions SET url = 'javascript:alert(1)' WHERE url LIKE ?", [THREAD])
    db.execute("UPDATE brand_replies SET url = 'data:text/html,<script>1</script>' WHERE url LIKE ?", [THREAD])
    db.conn.commit()
    api = site.client("agent")
    shown = api.get(f"/api/mentions/{HOSTILE_KEY}").json()
    assert shown["mention"]["url"] == ""
    assert shown["thread"] and all(t["url"] == "" for t in shown["thread"])
    assert shown["answers"] and all(a["url"] == "" for a in shown["answers"])
    assert all(h["url"] == "" for h in shown["author"]["history"])
    listed = api.get("/api/inbox", params={"channel": "facebook", "state": "all", "q": "leak"}).json()["items"]
    assert [i["url"] for i in listed if i["key"] == HOSTILE_KEY] == [""]
    taught = api.get("/api/teach").json()["items"]
    db.execute("UPDATE mentions SET url = 'javascript:void(0)' WHERE key = ?", [taught[0]["key"]])
    db.conn.commit()
    assert api.get("/api/teach").json()["items"][0]["url"] == ""
    assert any(i["url"].startswith("https://") for i in api.get("/api/inbox").json()["items"])  # the rest stay


def test_the_openapi_description_declares_real_schemas_and_every_error(site: Site) -> None:
    spec = site.client().get("/api/openapi.json").json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    wanted = "MentionRow InboxPage MentionWithThread BulkResult Cockpit Advocates Sources Sessions Error"
    assert set(wanted.split()) <= set(schemas)
    for e in ENDPOINTS:
        operation = spec["paths"][e.path][e.method.lower()]
        assert "$ref" in str(operation["responses"]["200"]["content"]), e.path
        codes = set(operation["responses"]) - {"200"}
        assert codes == {str(c) for c in error_codes(e)} and {"400", "401"} <= codes, e.path
        for p in operation["parameters"]:
            if p["in"] == "query":
                assert p["schema"] != {"type": "string"} or PARAMS[p["name"]].kind == "text", p["name"]
    assert {"409", "413", "415"} <= set(spec["paths"]["/api/mentions/{key}/answered"]["post"]["responses"])
    assert "429" in spec["paths"]["/api/password"]["post"]["responses"]
    page = next(p for p in spec["paths"]["/api/inbox"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1}
    team = next(p for p in spec["paths"]["/api/inbox"]["get"]["parameters"] if p["name"] == "team")
    assert team["schema"]["enum"] == [t.name for t in site.settings.triage.teams]


def checker(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``spec``."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_each_get_endpoints_real_answer_matches_its_declared_schema(site: Site) -> None:
    spec = site.client().get("/api/openapi.json").json()
    admin = site.client("admin")
    admin.post(f"/api/mentions/{HOSTILE_KEY}/ack")  # an event in the mention's history
    person = admin.get("/api/advocates").json()["advocates"][0]["person_id"]
    filled = {"key": HOSTILE_KEY, "person": str(person)}
    checked = 0
    for e in ENDPOINTS:
        if e.method != "GET":
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: filled[m.group(1)], e.path)
        query = {"format": "json"} if e.produces == "text/csv" else {}
        response = admin.get(path, params=query)
        assert response.status_code == 200, path
        content = spec["paths"][e.path]["get"]["responses"]["200"]["content"]
        schema = content[response.headers["content-type"].split(";")[0]]["schema"]
        found = checker(spec, schema).iter_errors(response.json())
        errors = [f"{'/'.join(map(str, x.absolute_path))}: {x.message}" for x in found]
        assert not errors, (path, errors[:5])
        checked += 1
    assert checked == sum(1 for e in ENDPOINTS if e.method == "GET")
    error_schema = {"$ref": "#/components/schemas/Error"}
    refused = admin.get("/api/inbox", params={"page": "x"})
    checker(spec, error_schema).validate(refused.json())
    checker(spec, {"$ref": "#/components/schemas/InboxPage"}).validate(admin.get("/api/inbox").json())
    assert not checker(spec, {"$ref": "#/components/schemas/MentionRow"}).is_valid({"key": "x:1"})


def families(site: Site) -> dict[str, Any]:
    text = site.client("admin").get("/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def by(family: Any, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in family.samples}


def test_metrics_carry_the_cockpits_figures_unassigned_per_team_sources_and_delivery(site: Site) -> None:
    supervisor = site.client("supervisor")
    found = families(site)
    for window, days in (("24h", 1), ("7d", 7)):
        expected = supervisor.get("/api/cockpit", params={"days": days}).json()["figures"]["all"]["all"]
        assert by(found["passaparola_sla_compliance_ratio"], "window")[window] == pytest.approx(expected["compliance"])
        median = by(found["passaparola_first_response_median_seconds"], "window")[window]
        assert median == pytest.approx(expected["median_seconds"])
        p90 = by(found["passaparola_first_response_p90_seconds"], "window")[window]
        assert p90 == pytest.approx(expected["p90_seconds"])
    unassigned = by(found["passaparola_unassigned_open"], "team")
    cockpit = supervisor.get("/api/cockpit").json()
    assert sum(unassigned.values()) == cockpit["unassigned_open"] > 0
    assert set(unassigned) == {t.name for t in site.settings.triage.teams} | {"-"}
    care = site.client("agent").get("/api/inbox", params={"team": "care", "assignee": "-"}).json()["total"]
    assert unassigned["care"] == care
    sources = supervisor.get("/api/sources").json()["sources"]
    last = by(found["passaparola_source_last_success_timestamp_seconds"], "source")
    assert last == {s["name"]: pytest.approx(_timestamp(s["last_success_at"])) for s in sources}
    assert by(found["passaparola_alerts_failing"], "route") == {}

    db = site.store.db
    key = db.execute("SELECT key FROM outbox ORDER BY key LIMIT 1").fetchone()[0]
    db.execute("UPDATE outbox SET sent_at = NULL, attempts = 2, route = 'ops' WHERE key = ?", [key])
    db.execute(
        "INSERT INTO outbox_targets (alert_key, target, attempts, last_error) VALUES (?, 'mailto://ops@x.example', 2, "
        "'refused'), (?, 'json://hooks.example/a', 1, NULL)",
        [key, key],
    )
    db.execute(
        "UPDATE outbox_targets SET sent_at = '2026-03-02T09:00:00+00:00' WHERE target = 'json://hooks.example/a'"
    )
    db.conn.commit()
    found = families(site)
    assert by(found["passaparola_alerts_failing"], "route") == {"ops": 1.0}
    assert by(found["passaparola_delivery_target_failing"], "target") == {"mailto://ops@x.example": 1.0}


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_healthz_of_the_web_app_alone_lists_its_checks_and_stays_up_without_a_daemon(site: Site) -> None:
    anonymous = site.client()
    alone = anonymous.get("/healthz")
    assert alone.status_code == 200, alone.text
    body = alone.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "migrations", "heartbeat"}
    assert body["checks"]["database"] == {"ok": True, "detail": "answers and takes a write"}
    assert body["checks"]["migrations"]["ok"] and body["checks"]["migrations"]["detail"].startswith("all ")
    heartbeat = body["checks"]["heartbeat"]
    assert heartbeat["detail"] == "no daemon seen" and heartbeat["required"] is False
    site.store.health.beat(NOW - timedelta(hours=2))  # a daemon elsewhere, long silent: its own health check's
    later = anonymous.get("/healthz").json()
    assert later["status"] == "ok" and later["checks"]["heartbeat"]["age_seconds"] == 7200.0
    assert later["checks"]["heartbeat"]["detail"] == "a daemon beat 7200 s ago (not in this process)"
    site.store.db.execute("PRAGMA query_only = ON")  # what breaks the web app itself: no write goes through
    try:
        broken = anonymous.get("/healthz")
    finally:
        site.store.db.execute("PRAGMA query_only = OFF")
    assert broken.status_code == 503 and broken.json()["failing"] == ["database"]
    assert broken.json()["checks"]["database"]["detail"].startswith("answers but takes no write")


def test_healthz_beside_the_daemon_fails_on_a_stale_heartbeat(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "beside.db"
    db.write_bytes(demo_db.read_bytes())
    settings = web_settings(db)
    store = Store.open(db, shared=True)
    server = WebServer(create_app(settings, store, FixedClock(NOW), daemon=True), "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/healthz"
        limit = settings.web.heartbeat_max_age_seconds
        store.health.beat(NOW - timedelta(seconds=10))
        fresh = httpx.get(url, timeout=5)
        assert fresh.status_code == 200 and fresh.json()["checks"]["heartbeat"]["detail"] == "beat 10 s ago"
        store.health.beat(NOW - timedelta(seconds=limit + 1))
        stale = httpx.get(url, timeout=5)
        assert stale.status_code == 503 and stale.json()["failing"] == ["heartbeat"]
        check = stale.json()["checks"]["heartbeat"]
        assert check["required"] is True and check["limit_seconds"] == limit and check["age_seconds"] == limit + 1
        assert check["detail"] == f"silent for {limit + 1} s: the loop is stuck or stopped"
        metrics = httpx.get(url.replace("/healthz", "/metrics"), headers={"Authorization": f"Bearer {TOKENS['admin']}"})
        assert metrics.status_code == 200
    finally:
        server.stop()
        store.close()
