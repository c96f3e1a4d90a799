"""Functions of the sales example: CSV in, JSON in the middle, HTML and text out."""

from __future__ import annotations

import csv
import html
import io

import wfe

CURRENCY = "EUR"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _revenue(row: dict[str, str]) -> float:
    return round(int(row["units"]) * float(row["unit_price"]), 2)


@wfe.function(inputs=["text/csv"], outputs="application/json")
def revenue_by_region(sales: str) -> dict[str, float]:
    """Total revenue per region."""
    totals: dict[str, float] = {}
    for row in _rows(sales):
        totals[row["region"]] = round(totals.get(row["region"], 0.0) + _revenue(row), 2)
    return dict(sorted(totals.items()))


@wfe.function(inputs=["text/csv"], outputs="application/json")
def revenue_by_month(sales: str, *, months: int = 12) -> dict[str, float]:
    """Total revenue per month (YYYY-MM), the last ``months`` months."""
    totals: dict[str, float] = {}
    for row in _rows(sales):
        month = row["date"][:7]
        totals[month] = round(totals.get(month, 0.0) + _revenue(row), 2)
    return dict(sorted(totals.items())[-months:])


@wfe.function(inputs=["application/json", "application/json"], outputs="application/json")
def attainment(by_region: dict[str, float], targets: dict[str, float]) -> dict[str, dict[str, float]]:
    """Revenue against target per region."""
    return {
        region: {"revenue": revenue, "target": targets.get(region, 0.0),
                 "attained": round(revenue / targets[region], 3) if targets.get(region) else 0.0}
        for region, revenue in by_region.items()
    }


@wfe.function(inputs=["application/json", "application/json"], outputs="text/html")
def render_report(by_month: dict[str, float], regions: dict[str, dict[str, float]], *, title: str) -> str:
    """One self-contained HTML page."""
    region_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{v['revenue']:,.2f} {CURRENCY}</td>"
        f"<td>{v['target']:,.0f} {CURRENCY}</td><td>{v['attained']:.0%}</td></tr>"
        for name, v in regions.items()
    )
    peak = max(by_month.values()) or 1.0
    month_rows = "".join(
        f"<tr><td>{m}</td><td><div style='background:#4a7;width:{200 * v / peak:.0f}px'>&nbsp;</div></td>"
        f"<td>{v:,.2f}</td></tr>"
        for m, v in by_month.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><h2>By region</h2><table>"
        f"<tr><th>region</th><th>revenue</th><th>target</th><th>attained</th></tr>{region_rows}</table>"
        f"<h2>By month</h2><table>{month_rows}</table></body></html>"
    )


@wfe.function(inputs=["application/json"], outputs="text/plain")
def summary(regions: dict[str, dict[str, float]]) -> str:
    """A few lines for a chat message or an e-mail."""
    total = sum(v["revenue"] for v in regions.values())
    best = max(regions, key=lambda r: regions[r]["attained"])
    missed = sorted(r for r, v in regions.items() if v["attained"] < 1.0)
    return (
        f"Total revenue: {total:,.2f} {CURRENCY}\n"
        f"Best region: {best} ({regions[best]['attained']:.0%} of target)\n"
        f"Below target: {', '.join(missed) or 'none'}\n"
    )
