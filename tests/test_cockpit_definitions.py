"""One definition of "open", "unassigned" and "overdue" (#19), read through the inbox, the cockpit, the metrics
and the pages on the same replayed demo; the inbox by urgency, with the burst as one incident row."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.webkit import NOW, Site, csrf_of, serve

RANK = {"urgent": 0, "high": 1, "normal": 2}


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def every_open(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    rows, page = [], 1
    while True:
        found = api.get("/api/inbox", params={**params, "page": str(page)}).json()
        rows += found["items"]
        if page >= found["pages"]:
            return rows
        page += 1


def test_open_unassigned_and_overdue_mean_the_same_everywhere(site: Site) -> None:
    api = site.client("admin")
    rows = every_open(api)
    cockpit = api.get("/api/cockpit").json()
    nobody = [r for r in rows if not r["assignee"]]
    late = [r for r in rows if r["due_at"] and datetime.fromisoformat(r["due_at"]) <= NOW]
    assert len(nobody) > 10  # triage leaves the assignee empty (NULL) when nobody is free
    assert api.get("/api/inbox", params={"assignee": "-"}).json()["total"] == len(nobody) == cockpit["unassigned_open"]
    assert cockpit["open_now"] == len(rows) == site.store.counts()["open"]
    assert cockpit["overdue_now"] == len(late) > 0
    for load in cockpit["workloads"]:
        theirs = [r for r in rows if r["assignee"] == load["member"]]
        assert load["open"] == len(theirs)
        assert load["overdue"] == sum(1 for r in late if r["assignee"] == load["member"])
    metrics = {
        s.labels["sla_state"]: s.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        if family.name == "passaparola_unanswered"
        for s in family.samples
    }
    assert sum(metrics.values()) == len(rows) and metrics["breached"] == len(late)
    page = site.login("sara").get("/cockpit").text
    shown = {
        kpi: int(re.search(rf'id="{kpi}">[^<]*<b>(\d+)</b>', page).group(1))
        for kpi in ("open-count", "overdue-count", "unassigned-count")
    }  # type: ignore[union-attr]
    assert shown == {"open-count": len(rows), "overdue-count": len(late), "unassigned-count": len(nobody)}


def test_the_inbox_is_ordered_by_priority_then_time_left(site: Site) -> None:
    rows = every_open(site.client("agent"))
    keys = [(RANK[r["priority"]], r["due_at"] is None, r["due_at"] or "") for r in rows]
    assert keys == sorted(keys)
    assert rows[0]["priority"] != "normal"


def test_a_burst_is_one_incident_row_with_bulk_actions(site: Site) -> None:
    sara = site.login("sara")
    page = sara.get("/inbox").text
    incident = re.search(r'<article class="incident[^"]*" data-incident="([^"]+)">(.*?)</article>', page, re.S)
    assert incident, "the burst is not grouped"
    alert_key, body = incident.group(1), incident.group(2)
    count = int(re.search(r'<b class="count">(\d+)</b>', body).group(1))  # type: ignore[union-attr]
    grouped = re.findall(r'name="keys" value="([^"]+)"', body)
    assert count == len(grouped) >= 10
    listed = re.findall(r'<tr class="mention[^"]*" data-key="([^"]+)"', page)
    assert not set(grouped) & set(listed)  # the burst is not listed a second time
    assert f"<h1>Da rispondere <small>{site.store.counts()['open']}</small>" in page  # the total still counts it
    members = sara.get("/inbox", params={"incident": alert_key}).text
    assert sorted(re.findall(r'<tr class="mention[^"]*" data-key="([^"]+)"', members)) == sorted(grouped)
    form = {"csrf": csrf_of(page), "action": "ignore", "reason": "doppione", "keys": grouped}
    assert sara.post("/inbox/bulk", data=form).status_code == 303
    assert all(site.store.conversation(key).state == "ignored" for key in grouped)
    assert 'class="incident' not in sara.get("/inbox").text


def test_durations_are_human_and_every_page_names_its_time_zone(site: Site) -> None:
    sara = site.login("sara")
    zone = site.settings.triage.business.zone
    for path in ("/inbox", "/cockpit", "/advocates", "/sources", "/teach"):
        page = sara.get(path).text
        assert f'<span id="zone">{zone}</span>' in page, path
        ours = re.sub(r"<bdi>.*?</bdi>", "", page, flags=re.S)  # what people and alerts wrote is theirs
        assert not re.search(r"\b\d{3,} min\b", ours), path  # "4233 min" reads "2 g 22 h"


def test_a_mention_someone_else_has_open_or_is_answering_says_who(site: Site) -> None:
    giulia, sara = site.login("giulia"), site.login("sara")
    key = giulia.get("/api/inbox").json()["items"][0]["key"]
    page = giulia.get(f"/mentions/{key}").text
    assert 'class="collision"' not in page  # nobody else is on it
    seen = sara.get(f"/mentions/{key}").text
    assert re.search(r'class="collision".*<b><bdi>giulia</bdi></b> la sta guardando', seen, re.S)
    draft = {"csrf": csrf_of(page), "draft": "Ciao, ci scusiamo: controlliamo subito."}
    assert giulia.post(f"/mentions/{key}/lint", data=draft).status_code == 200
    row = next(r for r in every_open(site.client("supervisor")) if r["key"] == key)
    assert {"member": "giulia", "doing": "answering"} in row["others"]
    inbox = sara.get("/inbox").text
    assert re.search(rf'data-key="{re.escape(key)}".*?giulia</bdi>: sta scrivendo la risposta', inbox, re.S)
    notice = re.search(r'<p class="collision".*?</p>', giulia.get(f"/mentions/{key}").text, re.S).group(0)  # type: ignore[union-attr]
    assert "sara</bdi></b> la sta guardando" in notice and "giulia" not in notice  # never about herself
    site.clock.now = NOW + timedelta(minutes=6)
    assert 'class="collision"' not in sara.get(f"/mentions/{key}").text  # gone after five minutes
