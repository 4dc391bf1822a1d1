"""The monthly report: one self-contained HTML file per scored month (charts as inline SVG, styles
inline, no script and no address to fetch), from the marts as they stood at that month.

Point in time: the report of month M shows only outcomes known at M, that is the months whose
window had ended by M (retention and value after 3 months: months up to M-3; the backtest: up to M
minus the months of value it predicts), so a report written again later says the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape
from pathlib import Path

import duckdb

from valuetier.application.charts import bar_chart, heatmap, line_chart, ranked_bars
from valuetier.application.monitoring import MonitoringRules, fairness_summary
from valuetier.core.months import add_months, parse_month
from valuetier.core.parameters import business_parameters
from valuetier.core.tables import ALERTS_TABLE, CRM_ACTIONS_TABLE, DRIFT_TABLE, FAIRNESS_TABLE, TIERS_TABLE

TIERS = ("high", "mid", "low")
MOVES_TO = ("high", "mid", "low", "churned")
MOVES_FROM = ("high", "mid", "low", "new")
# The ways eval_campaign_targeting_monthly chooses a campaign's contacts (its column prefixes), as shown.
TARGETING_WAYS = {"uplift": "by predicted uplift", "random": "at random within tier", "tier": "by tier alone"}
STYLE = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1360px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 6px}p.note{color:#555;font-size:13px;margin:2px 0 10px}
.figures{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0 18px}.figure{border:1px solid #ddd;border-radius:6px;
padding:8px 12px;min-width:150px}.figure b{display:block;font-size:20px}.grid2{display:grid;
grid-template-columns:repeat(auto-fill,minmax(660px,1fr));gap:18px}section{border:1px solid #e3e3e3;border-radius:6px;
padding:10px}table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 8px;
text-align:left}svg text{font-size:11px;fill:#333}svg .grid{stroke:#eee}svg .reference{stroke:#b8403a;
stroke-dasharray:4 3}svg .cell{fill:#111;font-size:12px}.empty{color:#777;font-style:italic;padding:40px 0}"""


@dataclass(frozen=True)
class ReportResult:
    month: str
    path: Path
    charts: int
    key_figures: dict[str, str]

    def markdown(self) -> str:
        return "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in self.key_figures.items())


def report_path(reports_dir: Path, month: str) -> Path:
    return reports_dir / f"valuetier-report-{month}.html"


def write_report(con: duckdb.DuckDBPyConnection, month: str, reports_dir: Path) -> ReportResult:
    m = parse_month(month)
    k = business_parameters().outcome_months
    horizon = business_parameters().label_horizon_months
    known_k = parse_month(add_months(month, -k))  # the last scored month whose k-month window had ended

    sizes = dict(
        con.execute(f"SELECT value_tier, count(*) FROM {TIERS_TABLE} WHERE month_start = ? GROUP BY 1", [m]).fetchall()
    )
    predicted = dict(
        con.execute(
            f"SELECT value_tier, sum(predicted_value) FROM {TIERS_TABLE} WHERE month_start = ? GROUP BY 1", [m]
        ).fetchall()
    )
    shares_month, shares = _latest(
        con, "evaluation.eval_tier_outcomes_monthly", "value_tier, value_share", known_k, "true"
    )
    conversion_month, conversion = _latest(
        con,
        "evaluation.eval_campaign_conversion_monthly",
        "value_tier, conversion_rate, roi",
        known_k,
        "breakdown = 'tier'",
    )
    retention = con.execute(
        f"""SELECT strftime(month_start, '%Y-%m'), value_tier, retention_rate_{k}m
            FROM evaluation.eval_retention_monthly WHERE breakdown = 'tier' AND month_start <= ? ORDER BY 1""",
        [known_k],
    ).fetchall()
    backtest = con.execute(
        """SELECT strftime(month_start, '%Y-%m'), ranking, normalized_gini FROM evaluation.eval_model_backtest_monthly
           WHERE month_start + to_months(value_horizon_months) <= ? ORDER BY 1""",
        [m],
    ).fetchall()
    stability = con.execute(
        """SELECT strftime(month_start, '%Y-%m'), published_flip_rate, plain_flip_rate
           FROM evaluation.eval_tier_stability_monthly WHERE month_start <= ? AND customers_tiered_2m_before > 0
           ORDER BY 1""",
        [m],
    ).fetchall()
    capture = con.execute(
        """SELECT sum(published_high_capture * realised_value) / sum(realised_value),
                  sum(plain_high_capture * realised_value) / sum(realised_value), count(*)
           FROM evaluation.eval_tier_stability_monthly WHERE month_start <= ? AND realised_value IS NOT NULL""",
        [known_k],
    ).fetchone()
    disparities = con.execute(
        f"""SELECT attribute || ' ' || attribute_group || ': ' || outcome_kind || ' ' || outcome, disparity_ratio_upper
            FROM {FAIRNESS_TABLE} WHERE month_start = ? AND reviewed AND disparity_ratio IS NOT NULL
            ORDER BY disparity_ratio_upper, 1 LIMIT 8""",
        [m],
    ).fetchall()
    by_age = dict(
        con.execute(
            f"""SELECT attribute_group, outcome_share FROM {FAIRNESS_TABLE}
                WHERE month_start = ? AND attribute = 'age_band' AND outcome_kind = 'tier' AND outcome = 'high'""",
            [m],
        ).fetchall()
    )
    high_by_age = {band: by_age[band] for band in business_parameters().age_band_names() if band in by_age}
    targeting = con.execute(
        f"""SELECT {
            ", ".join(
                f"sum({way}_treated_conversions) / sum({way}_treated) "
                f"- sum({way}_control_conversions) / sum({way}_controls)"
                for way in TARGETING_WAYS
            )
        }, count(*), sum(chosen_contacts), min(strftime(month_start, '%Y-%m')), max(strftime(month_start, '%Y-%m'))
            FROM evaluation.eval_campaign_targeting_monthly
            WHERE targeting_basis = 'uplift' AND month_start <= ?""",
        [known_k],
    ).fetchone()
    qini = con.execute(
        """SELECT strftime(month_start, '%Y-%m'), avg(qini_coefficient) FROM evaluation.eval_campaign_targeting_monthly
           WHERE targeting_basis = 'uplift' AND month_start <= ? GROUP BY 1 ORDER BY 1""",
        [known_k],
    ).fetchall()
    ab_campaigns = con.execute(
        "SELECT count(*) FROM evaluation.eval_campaign_targeting_monthly WHERE month_start <= ?", [known_k]
    ).fetchone()[0]
    priority = con.execute(
        f"SELECT any_value(priority_basis), count(contact_priority) FROM {CRM_ACTIONS_TABLE} WHERE month_start = ?",
        [m],
    ).fetchone()
    moves = {
        (f, t): float(s)
        for f, t, s in con.execute(
            """SELECT from_tier, to_tier, share_of_from_tier FROM evaluation.eval_tier_migration_monthly
               WHERE month_start = ?""",
            [m],
        ).fetchall()
        if s is not None
    }
    drift = {
        measure: con.execute(
            f"""SELECT subject, psi, reference FROM {DRIFT_TABLE} WHERE month_start = ? AND measure = ?
                ORDER BY psi DESC, subject LIMIT 8""",
            [m, measure],
        ).fetchall()
        for measure in ("delivery", "population")
    }
    alerts = con.execute(
        f"""SELECT severity, kind, subject, reason FROM {ALERTS_TABLE} WHERE month_start = ? AND severity <> 'info'
            ORDER BY severity = 'error' DESC, kind, subject""",
        [m],
    ).fetchall()
    at_risk = con.execute(
        f"SELECT count(*) FROM {ALERTS_TABLE} WHERE month_start = ? AND kind = 'high_value_at_risk'", [m]
    ).fetchone()[0]

    rules = MonitoringRules()
    retention_months = sorted({r[0] for r in retention})
    backtest_months = sorted({r[0] for r in backtest})
    stability_months = [r[0] for r in stability]
    protected = business_parameters().fairness_protected_attributes
    sections = [
        _section(
            "Tier sizes and value shares",
            f"Customers per tier in {month}; each tier's share of the value realised over the {k} months after "
            f"{_month(shares_month)}, the latest month whose window had ended.",
            bar_chart("customers per tier", list(TIERS), {"customers": [sizes.get(t) for t in TIERS]})
            if sizes
            else None,
            bar_chart(
                "share of realised value", list(TIERS), {"value share": [_float(shares.get(t)) for t in TIERS]}, ".0%"
            )
            if shares
            else None,
        ),
        _section(
            f"Retention after {k} months by tier",
            f"Share of each scored month's customers still live {k} months later.",
            line_chart(
                f"retention after {k} months",
                retention_months,
                {t: _series(retention, retention_months, t) for t in TIERS},
                ".0%",
            )
            if retention
            else None,
        ),
        _section(
            "Campaign conversion and ROI by tier",
            f"Contacts sent in the month after {_month(conversion_month)}, by that month's tier: conversion rate, "
            "and attributed value over cost (last touch).",
            bar_chart(
                "conversion rate",
                list(TIERS),
                {"conversion": [_float(conversion.get(t, (None,))[0]) for t in TIERS]},
                ".1%",
            )
            if conversion
            else None,
            bar_chart("ROI", list(TIERS), {"ROI": [_float(conversion.get(t, (None, None))[1]) for t in TIERS]}, ",.1f")
            if conversion
            else None,
        ),  # fmt: skip
        _section(
            "Tier migration",
            f"Where each tier of the month before {month} went: the share of the row's customers in each cell.",
            heatmap("migration from last month's tier", list(MOVES_FROM), list(MOVES_TO), moves) if moves else None,
        ),
        _section(
            "Tier stability",
            "A->B->A flips within two months, as a share of the customers tiered in all three months: the "
            "published tiers (stable: last month's tier is kept within a margin, var tier_incumbent_margin) "
            "against the plain cut of the same ranking; and the high tier's share of the value realised over "
            f"the {k} months after each month, over the {capture[2]} months whose window had ended"
            + (f": published {_percent(capture[0])}, plain cut {_percent(capture[1])}." if capture[2] else "."),
            line_chart(
                "A->B->A flips",
                stability_months,
                {"published": [_float(r[1]) for r in stability], "plain cut": [_float(r[2]) for r in stability]},
                ".1%",
            )
            if stability
            else None,
            bar_chart(
                "high-tier value capture",
                ["published", "plain cut"],
                {"capture": [_float(capture[0]), _float(capture[1])]},
                ".1%",
            )
            if capture[2]
            else None,
        ),
        _section(
            "Fairness review",
            "The playbook's pricing and service actions each protected group "
            f"({', '.join(protected)}) gets least, against the most favoured group: the disparity ratio at the "
            "most the month's counts allow (its upper bound, beyond chance); a bar under the four-fifths line is a "
            f"tier_fairness warning. And the high tier's share by age band. Fairness {month}: "
            f"{fairness_summary(con, m)}.",
            *(
                [
                    ranked_bars(
                        "disparity ratio of pricing and service actions (upper bound)",
                        [r[0] for r in disparities],
                        [float(r[1]) for r in disparities],
                        ".2f",
                        {"four-fifths": business_parameters().fairness_min_ratio},
                    )
                ]
                if disparities
                else []
            ),
            *(
                [
                    bar_chart(
                        "high-tier share by age band",
                        list(high_by_age),
                        {"high tier": [_float(v) for v in high_by_age.values()]},
                        ".1%",
                    )
                ]
                if high_by_age
                else []
            ),
        ),  # fmt: skip
        _section(
            "Campaign targeting",
            _targeting_note(month, targeting, ab_campaigns, priority),
            # Without an uplift model in any finished month the note says why; no empty charts.
            *(
                [
                    bar_chart(
                        "incremental conversions per contact",
                        list(TARGETING_WAYS.values()),
                        {"incremental": [_float(v) for v in targeting[:3]]},
                        ".1%",
                    ),
                    line_chart(
                        "Qini coefficient of the uplift ranking",
                        [r[0] for r in qini],
                        {"Qini": [_float(r[1]) for r in qini]},
                        ".3f",
                    ),
                ]
                if targeting[3]
                else []
            ),
        ),
        _section(
            "Model quality against RFM",
            f"Normalized Gini of predicted value against the value realised over the {horizon} months after each "
            "month, for the model's tiers and weighted RFM (months the model trained on are in-sample for it).",
            line_chart(
                "normalized Gini",
                backtest_months,
                {
                    "model": _series(backtest, backtest_months, "tiers"),
                    "RFM": _series(backtest, backtest_months, "rfm"),
                    **(
                        {"challenger": _series(backtest, backtest_months, "challenger")}
                        if any(r[1] == "challenger" for r in backtest)
                        else {}
                    ),
                },
            )
            if backtest
            else None,
        ),  # fmt: skip
        _drift_section(
            "Is the delivery whole?",
            "the delivered columns and steady indicators",
            "the recent months",
            "a sudden shift is a broken delivery (check the source and column)",
            drift["delivery"],
            {"warning": rules.psi_warning, "error": rules.psi_error},
        ),
        _drift_section(
            "Has the population moved?",
            "the indicators the model reads",
            "the training months",
            "a large shift from what the champion learned asks for a retraining, not a new delivery",
            drift["population"],
            {"retrain": rules.population_psi},
        ),
    ]
    figures = {
        "customers": f"{sum(sizes.values()):,}",
        "high tier": f"{sizes.get('high', 0):,}",
        "predicted value (high tier)": f"{predicted.get('high') or 0:,.0f}",
        f"high-tier value share ({_month(shares_month)})": _percent(shares.get("high")),
        f"high-tier retention after {k} months": _percent(_last(retention, "high")),
        "model Gini / RFM Gini": f"{_fmt(_last(backtest, 'tiers'))} / {_fmt(_last(backtest, 'rfm'))}",
        "errors / warnings": f"{sum(a[0] == 'error' for a in alerts)} / {sum(a[0] == 'warning' for a in alerts)}",
        "high-value customers at risk": f"{at_risk:,}",
    }
    html = _page(month, figures, sections, alerts)
    path = report_path(reports_dir, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)  # a reader opens the old report or the new one, never half of one
    return ReportResult(month, path, html.count('<svg class="chart"'), figures)


def _targeting_note(month: str, targeting: tuple, ab_campaigns: int, priority: tuple) -> str:
    share = business_parameters().targeting_contact_share
    basis = {"uplift": "by the predicted uplift of their next best product", "tier rule": "by the tier rule"}
    now = (
        f"The CRM's {priority[1]:,} contactable customers of {month} are prioritised {basis[priority[0]]}."
        if priority[0]
        else ""
    )
    if not ab_campaigns:
        return (
            "The deliveries hold no A/B campaign with a control group (or none whose outcome window has ended): "
            "whom a campaign should contact cannot be learnt or measured, and contacts are prioritised by the "
            f"tier rule (high tier first). {now}"
        )
    if not targeting[3]:
        return (
            f"{ab_campaigns} A/B campaigns, none yet with an uplift model (too few finished contacts with a "
            f"control group): contacts are prioritised by the tier rule. {now}"
        )
    ratio = (
        f" Aimed by uplift, a contact brings {targeting[0] / targeting[1]:.2f}x the conversions of one at random "
        "within tier."
        if targeting[1] and targeting[1] > 0
        else ""
    )
    return (
        f"The same number of contacts ({share:.0%} of each A/B campaign's selected customers, {targeting[4]:,} in "
        f"all) chosen three ways in the {targeting[3]} campaigns from {targeting[5]} to {targeting[6]} that had an "
        "uplift model, each judged on the control design: the chosen treated customers' conversion less the "
        f"chosen controls'.{ratio} And the Qini coefficient of the whole uplift ranking by month (above 0: better "
        f"than chance). {now}"
    )


def _latest(con, table: str, columns: str, until: date, where: str) -> tuple[date | None, dict]:
    latest = con.execute(f"SELECT max(month_start) FROM {table} WHERE month_start <= ? AND {where}", [until]).fetchone()
    if latest[0] is None:
        return None, {}
    rows = con.execute(f"SELECT {columns} FROM {table} WHERE month_start = ? AND {where}", [latest[0]]).fetchall()
    return latest[0], {r[0]: (r[1] if len(r) == 2 else r[1:]) for r in rows}


def _series(rows, months: list[str], key: str) -> list[float | None]:
    values = {(r[0], r[1]): r[2] for r in rows}
    return [_float(values.get((month, key))) for month in months]


def _last(rows, key: str):
    values = [r[2] for r in rows if r[1] == key and r[2] is not None]
    return values[-1] if values else None


def _float(v) -> float | None:
    return None if v is None else float(v)


def _percent(v) -> str:
    return "-" if v is None else f"{float(v):.1%}"


def _fmt(v) -> str:
    return "-" if v is None else f"{float(v):.3f}"


def _month(d: date | None) -> str:
    return d.strftime("%Y-%m") if d else "no month yet"


def _drift_section(title: str, what: str, against: str, meaning: str, rows: list, references: dict) -> str:
    """The PSI of what moved most against a reference (rows: subject, psi, reference months), one
    named bar each: the chart is "PSI against <against>"."""
    reference = rows[0][2] if rows else "none yet"
    note = f"Population stability index of {what} that moved most, against {against} ({reference}): {meaning}."
    bars = [r[0] for r in rows], [float(r[1]) for r in rows]
    return _section(title, note, ranked_bars(f"PSI against {against}", *bars, ".2f", references) if rows else None)


def _section(title: str, note: str, *charts: str | None) -> str:
    shown = "".join(c if c else '<div class="empty">No data for this chart yet.</div>' for c in charts)
    return f"<section><h2>{escape(title)}</h2><p class='note'>{escape(note)}</p>{shown}</section>"


def _page(month: str, figures: dict[str, str], sections: list[str], alerts: list) -> str:
    cards = "".join(f'<div class="figure">{escape(k)}<b>{escape(v)}</b></div>' for k, v in figures.items())
    rows = "".join(
        f"<tr><td>{escape(s)}</td><td>{escape(k)}</td><td>{escape(subj)}</td><td>{escape(r)}</td></tr>"
        for s, k, subj, r in alerts
    )
    table = (
        f"<table><tr><th>severity</th><th>kind</th><th>subject</th><th>reason</th></tr>{rows}</table>"
        if alerts
        else "<p>No warnings or errors this month.</p>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>ValueTier report {escape(month)}</title><style>{STYLE}</style></head><body>"
        f"<h1>ValueTier: customer value tiers, {escape(month)}</h1>"
        "<p class='note'>Written by the monthly pipeline from the warehouse's marts; outcomes only for months whose "
        "window had ended by this month.</p>"
        f"<div class='figures'>{cards}</div><div class='grid2'>{''.join(sections)}"
        f"<section><h2>Alerts</h2><p class='note'>Warnings and errors of monitoring.alerts for {escape(month)}."
        f"</p>{table}</section></div></body></html>"
    )
