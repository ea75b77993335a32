"""The X source's monthly read budget: X bills pay-per-use reads by the calendar month, at a price per stream.

The budget lives in the source's cursor as ``{"month": "2026-02", "reads": 0, "cost_usd": 0.0}``, so it survives
restarts; the first poll of a new month starts it again from zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: Pay-per-use prices (USD a post read, since February 2026): owned reads are cheaper than search.
PRICE_PER_READ = {"search": 0.005, "mentions": 0.001, "posts": 0.001}


def month_budget(saved: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """This month's reads and cost so far: what the cursor saved, unless it was another month's."""
    budget = dict(saved)
    month = now.strftime("%Y-%m")
    if budget.get("month") != month:
        budget = {"month": month, "reads": 0, "cost_usd": 0.0}
    return budget


def budget_spent(budget: Mapping[str, Any], limit: int) -> bool:
    """Whether ``limit`` reads (0: no limit) are spent: then no stream reads again before the month ends."""
    return bool(limit) and budget["reads"] >= limit


def spend(budget: dict[str, Any], stream: str, reads: int) -> None:
    """Count ``reads`` posts read on ``stream`` and what they cost (rounded to a hundredth of a cent)."""
    budget["reads"] += reads
    budget["cost_usd"] = round(budget["cost_usd"] + reads * PRICE_PER_READ[stream], 4)
