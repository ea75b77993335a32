"""The cockpit's charts as SVG geometry: numbers that `templates/_charts.html` draws as bars, lines and labels.

No script and no chart library: the page reads the same without JavaScript, and a chart is plain markup the
Content-Security-Policy allows. Each chart also carries what its text alternative says (its total, its busiest
or worst point), so the SVG's title and description and the table beside it tell the same story. Times are
labelled in the team's zone (`triage.business.zone`), as every other time on the pages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

#: viewBox width; the SVG scales to its box (app.css), so a phone and a desktop draw the same geometry.
WIDTH = 640
LEFT, RIGHT, TOP = 60, 8, 12  # room for the value axis, the last bar, a spike's marker
AXIS = 26  # the time axis' labels, under the plot
#: Stacked bottom up: the negative mentions first, where the eye looks.
SENTIMENTS = ("negative", "neutral", "positive", "unknown")


def nice(top: float) -> float:
    """The value axis' maximum: ``top`` rounded up to 1, 2 or 5 times a power of ten (1 when nothing)."""
    if top <= 0:
        return 1
    power = 10.0 ** math.floor(math.log10(top))
    return next(step * power for step in (1, 2, 5, 10) if top <= step * power + 1e-9)


def _local(value: str, zone: tzinfo) -> datetime:
    return datetime.fromisoformat(value).astimezone(zone)


def _frame(height: float) -> dict[str, Any]:
    """The size and plot area every chart with a value axis shares."""
    return {"width": WIDTH, "height": round(TOP + height + AXIS), "plot_bottom": TOP + height, "left": LEFT}


def _grid(top: float, height: float, unit: str = "") -> list[dict[str, Any]]:
    """Lines at zero, half and the top of the value axis, with their labels."""
    return [{"y": round(TOP + height - height * share, 1), "label": f"{top * share:g}{unit}"} for share in (0, 0.5, 1)]


def volume(hours: Sequence[dict[str, Any]], spikes: Sequence[dict[str, Any]], zone: tzinfo) -> dict[str, Any]:
    """Mentions per hour stacked by sentiment, a marker at each spike alert; hour labels every six hours of the
    team's clock (the date at midnight)."""
    height = 170.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(hours), 1)
    totals = [sum(int(h.get(k, 0)) for k in SENTIMENTS) for h in hours]
    top = nice(max(totals, default=0))
    index = {h["hour"][:13]: i for i, h in enumerate(hours)}
    bars = []
    for i, (h, total) in enumerate(zip(hours, totals, strict=True)):
        y, segments = TOP + height, []
        for label in SENTIMENTS:
            size = int(h.get(label, 0)) / top * height
            if size:
                y -= size
                segments.append({"cls": label, "y": round(y, 1), "h": round(size, 1)})
        local = _local(h["hour"], zone)
        tick = local.hour % 6 == 0
        bars.append(
            {
                "x": round(LEFT + i * slot, 1),
                "w": round(slot * 0.85, 1),
                "segments": segments,
                "total": total,
                "hour": h["hour"],
                "tick": tick,
                "label": (local.strftime("%m-%d") if local.hour == 0 else local.strftime("%H")) if tick else "",
            }
        )
    marks = [
        {"x": round(LEFT + (index[s["at"][:13]] + 0.5) * slot, 1), "kind": s["kind"], "title": s["title"]}
        for s in spikes
        if s["at"][:13] in index
    ]
    busiest = max(range(len(hours)), key=lambda i: totals[i], default=None)
    return {
        **_frame(height),
        "bars": bars,
        "spikes": marks,
        "grid": _grid(top, height),
        "total": sum(totals),
        "negative": sum(int(h.get("negative", 0)) for h in hours),
        "hours": max(len(hours) - 1, 1),  # the buckets of a window of whole hours, the current one included
        "peak": hours[busiest]["hour"] if busiest is not None and totals[busiest] else None,
        "most": totals[busiest] if busiest is not None else 0,
    }


def _day_label(day: str) -> str:
    return day[5:]  # "2026-03-02" -> "03-02", as the complaints table heads its days


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def response(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """First-response median and p90 per day, side by side, in minutes; values written on the bars while
    there is room (two weeks at most)."""
    height = 150.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    minutes = [(_minutes(d["median_seconds"]), _minutes(d["p90_seconds"])) for d in days]
    top = nice(max((p90 for _, p90 in minutes if p90 is not None), default=0))
    every = max(1, math.ceil(len(days) / 8))
    groups = []
    for i, (d, (median, p90)) in enumerate(zip(days, minutes, strict=True)):
        x, w = LEFT + i * slot, slot * 0.4
        bars = []
        for cls, value, offset in (("median", median, 0.1), ("p90", p90, 0.5)):
            if value is None:
                continue
            size = value / top * height
            bars.append(
                {
                    "cls": cls,
                    "x": round(x + slot * offset, 1),
                    "y": round(TOP + height - size, 1),
                    "w": round(w, 1),
                    "h": round(size, 1),
                    "minutes": round(value),
                }
            )
        groups.append(
            {
                "day": d["day"],
                "label": _day_label(d["day"]) if i % every == 0 else "",
                "x": round(x + slot / 2, 1),
                "bars": bars,
                "labelled": len(days) <= 14,
                "median": None if median is None else round(median),
                "p90": None if p90 is None else round(p90),
                "answered": d.get("answered", 0),
            }
        )
    slowest = max((g for g in groups if g["p90"] is not None), key=lambda g: g["p90"], default=None)
    return {
        **_frame(height),
        "groups": groups,
        "grid": _grid(top, height),
        "slowest": slowest,
    }


def sla(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The share of answers within their target per day, 0 to 100%."""
    height = 110.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / 8))
    groups = []
    for i, d in enumerate(days):
        share = d["compliance"]
        size = 0.0 if share is None else share * height
        groups.append(
            {
                "day": d["day"],
                "label": _day_label(d["day"]) if i % every == 0 else "",
                "x": round(LEFT + i * slot + slot * 0.15, 1),
                "w": round(slot * 0.7, 1),
                "mid": round(LEFT + i * slot + slot / 2, 1),
                "y": round(TOP + height - size, 1),
                "h": round(size, 1),
                "percent": None if share is None else round(share * 100),
                "labelled": len(days) <= 14,
            }
        )
    worst = min((g for g in groups if g["percent"] is not None), key=lambda g: g["percent"], default=None)
    return {
        **_frame(height),
        "groups": groups,
        "grid": [{"y": round(TOP + height - height * share, 1), "label": f"{share:.0%}"} for share in (0, 0.5, 1)],
        "worst": worst,
    }


def topics(weeks: Sequence[str], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Complaints per topic and week as small multiples: one row per topic, one cell per week, a bar as long
    as the week's count (the same scale everywhere), the count beside it."""
    label, row, head = 170, 34, 26
    cell = (WIDTH - label - RIGHT) / max(len(weeks), 1)
    top = max((n for r in rows for n in r["weeks"].values()), default=0) or 1
    lines = []
    for j, r in enumerate(rows):
        y = head + j * row
        cells = []
        for i, week in enumerate(weeks):
            n = int(r["weeks"].get(week, 0))
            length = n / top * (cell - 34)
            x = label + i * cell
            cells.append({"x": round(x, 1), "w": round(length, 1), "n": n, "text_x": round(x + length + 4, 1)})
        lines.append({"topic": r["topic"], "y": y, "bar_y": y + 8, "text_y": y + 22, "cells": cells})
    heads = [{"x": round(label + i * cell, 1), "label": _day_label(week)} for i, week in enumerate(weeks)]
    most = max(
        ((r["topic"], week, int(n)) for r in rows for week, n in r["weeks"].items()), key=lambda t: t[2], default=None
    )
    return {
        "width": WIDTH,
        "height": head + max(len(rows), 1) * row + 4,
        "label": label,
        "rows": lines,
        "heads": heads,
        "most": {"topic": most[0], "week": most[1], "count": most[2]} if most else None,
    }


def workload(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each member's open mentions against their capacity: the capacity as an outline, the open ones filled,
    the overdue ones among them in red."""
    label, row = 150, 30
    room = WIDTH - label - 60
    top = max((max(m["open"], m["capacity"]) for m in members), default=0) or 1
    rows = []
    for j, m in enumerate(members):
        y = j * row + 6
        rows.append(
            {
                "member": m["member"],
                "away": m["away"],
                "y": y,
                "text_y": y + 15,
                "capacity_w": round(m["capacity"] / top * room, 1),
                "open_w": round(m["open"] / top * room, 1),
                "overdue_w": round(min(m["overdue"], m["open"]) / top * room, 1),
                "value_x": round(label + max(m["open"], m["capacity"]) / top * room + 6, 1),
                "open": m["open"],
                "capacity": m["capacity"],
                "overdue": m["overdue"],
            }
        )
    return {"width": WIDTH, "height": max(len(members), 1) * row + 8, "label": label, "rows": rows}
