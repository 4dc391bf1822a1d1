"""The playbook and crm_actions: a wrong playbook is refused with its line; on the generated bank,
every tiered customer gets the actions of its rule and a next best product recomputed here from
the indicators, and contacts are prioritised by predicted uplift or the tier rule; no personal data
reaches the table."""

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from valuetier.application.playbook import PlaybookError, load_playbook
from valuetier.core.contract import PRODUCT_TYPES
from valuetier.core.settings import REPO_ROOT
from valuetier.core.tables import CRM_ACTIONS_TABLE, UPLIFT_TABLE
from valuetier.tiering.scoring import ACTION_SEGMENT_SQL, ACTION_SEGMENTS

PLAYBOOK = REPO_ROOT / "playbook.yml"


def test_the_segments_the_playbook_knows_are_those_scoring_gives():
    labels = re.findall(r"(?:THEN|ELSE) '([^']+)'", ACTION_SEGMENT_SQL)
    assert sorted(set(labels)) == sorted(ACTION_SEGMENTS)


def test_the_repository_playbook_covers_every_segment_and_tier():
    playbook = load_playbook(PLAYBOOK)
    for segment, tiers in ACTION_SEGMENTS.items():
        for tier in tiers:
            rule = playbook.rule_for(segment, tier)
            assert rule.segment == segment and set(rule.offer) <= set(PRODUCT_TYPES)
    assert len(playbook.sha256) == 64


def edited(tmp_path, old: str, new: str, count: int = 1):
    text = PLAYBOOK.read_text()
    assert old in text
    path = tmp_path / "playbook.yml"
    path.write_text(text.replace(old, new, count))
    return path, text.replace(old, new, count).splitlines()


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("segment: high-value loyal", "segment: high-value loyl", "segment 'high-value loyl' is not one of"),
        ("offer: [wealth, fund, insurance]", "offer: [wealth, bonds, insurance]", "product 'bonds' is not one of"),
        ("channel: email", "channel: fax", "channel 'fax' is not one of"),
        (
            "service_level: standard\n    channel: email",
            "service_level: gold\n    channel: email",
            "service_level 'gold'",
        ),
        ("pricing: preferential", "pricing: free", "pricing 'free' is not one of"),
        ("max_contacts_per_month: 3", "max_contacts_per_month: lots", "must be a whole number"),
        ("max_contacts_per_month: 3", "max_contacts_per_month: 3\n    colour: red", "unknown key 'colour'"),
        ('segment: mid-value steady\n    tier: "*"', "segment: mid-value steady\n    tier: low", "tier 'low'"),
        ("offer: [savings, credit_card]", "offer: [savings, savings]", "'savings' is offered twice"),
    ],
)
def test_a_wrong_playbook_is_refused_naming_its_line(tmp_path, old, new, message):
    path, lines = edited(tmp_path, old, new)
    with pytest.raises(PlaybookError, match=re.escape(message)) as refused:
        load_playbook(path)
    where = re.match(rf"{re.escape(str(path))}:(\d+): ", str(refused.value))
    assert where, str(refused.value)
    wrong = new.splitlines()[-1].strip() if "colour" in new or "tier: low" in new else new.splitlines()[0].strip()
    assert wrong.split(":")[0] in lines[int(where.group(1)) - 1], (str(refused.value), lines[int(where.group(1)) - 1])


def test_a_duplicate_or_missing_rule_is_refused(tmp_path):
    path, _ = edited(tmp_path, "segment: high-value loyal", "segment: high-value at risk")
    with pytest.raises(PlaybookError, match=r"playbook.yml:\d+: a second rule for 'high-value at risk'.*line 14"):
        load_playbook(path)
    dormant = re.search(r"  - segment: low-value dormant\n(    .*\n)+", PLAYBOOK.read_text()).group(0)
    path, _ = edited(tmp_path, dormant, "")
    with pytest.raises(PlaybookError, match="no rule for 'low-value dormant' tier 'low'"):
        load_playbook(path)
    (tmp_path / "bad.yml").write_text("rules: [segment: x\n")
    with pytest.raises(PlaybookError, match="bad.yml: not valid YAML"):
        load_playbook(tmp_path / "bad.yml")


@pytest.mark.integration
def test_every_tiered_customer_gets_its_rule_and_next_best_product(pipeline_run):
    from tests.conftest import WAREHOUSE

    playbook = load_playbook(PLAYBOOK)
    holds = ", ".join(f"i.holds_{p}" for p in PRODUCT_TYPES)
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        actions = con.execute(f"SELECT * FROM {CRM_ACTIONS_TABLE}").df()
        tiers = con.execute(
            f"""SELECT t.customer_id, t.month_start, t.value_tier, t.segment, {holds}
                FROM marts.customer_tiers t JOIN marts.customer_indicators_monthly i USING (customer_id, month_start)"""
        ).df()
        columns = [r[0] for r in con.execute(f"DESCRIBE {CRM_ACTIONS_TABLE}").fetchall()]
    assert not {"full_name", "national_id", "phone", "email"} & set(columns)
    merged = tiers.merge(actions, on=["customer_id", "month_start"], suffixes=("", "_action"))
    assert len(actions) == len(tiers) == len(merged)  # one row per tiered customer and month
    assert (merged.value_tier == merged.value_tier_action).all() and (merged.segment == merged.segment_action).all()
    assert (actions.playbook_sha256 == playbook.sha256).all()
    # Similar customers: the month's customers of the same tier and segment.
    share = {
        (key, p): group[f"holds_{p}"].astype(float).mean()
        for key, group in tiers.groupby(["month_start", "value_tier", "segment"])
        for p in PRODUCT_TYPES
    }
    for row in merged.itertuples():
        rule = playbook.rule_for(row.segment, row.value_tier)
        actions_of_row = (row.service_level, row.channel, row.pricing_treatment, row.max_contacts_per_month)
        assert (*actions_of_row, row.playbook_line) == (
            rule.service_level, rule.channel, rule.pricing, rule.max_contacts_per_month, rule.line,
        )  # fmt: skip
        lacking = [p for p in rule.offer if not getattr(row, f"holds_{p}")]
        key = (row.month_start, row.value_tier, row.segment)
        best = max(lacking, key=lambda p: (share[(key, p)], -rule.offer.index(p))) if lacking else None
        chosen = None if pd.isna(row.next_best_product) else row.next_best_product
        assert chosen == best, row
        if best:
            assert row.next_best_product_uptake == pytest.approx(share[(key, best)], abs=5e-5)
    assert actions.next_best_product.notna().mean() > 0.9
    assert set(actions.service_level) >= {"dedicated_manager", "digital_self_service"}


def test_contacts_are_prioritised_by_predicted_uplift_within_the_caps_or_by_the_tier_rule(pipeline_run):
    """Each customer the CRM may contact (a cap above zero) has a priority, 1 the first: by the
    predicted uplift of the next best product in a month with an uplift model, by tier and value score
    in one without and for those with no product to offer; the rest have none."""
    from tests.conftest import WAREHOUSE

    uplift = ", ".join(f"u.uplift_{p}" for p in PRODUCT_TYPES)
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        actions = con.execute(
            f"""SELECT a.*, t.value_score, {uplift}, u.customer_id IS NOT NULL AS has_model_row,
                       count(u.customer_id) OVER (PARTITION BY a.month_start) > 0 AS month_has_model
                FROM {CRM_ACTIONS_TABLE} a
                JOIN marts.customer_tiers t USING (customer_id, month_start)
                LEFT JOIN {UPLIFT_TABLE} u USING (customer_id, month_start)"""
        ).df()
    bases = actions.groupby("month_start").agg(basis=("priority_basis", "unique"), model=("month_has_model", "first"))
    assert all(len(b) == 1 for b in bases.basis)
    assert {"uplift", "tier rule"} == {b[0] for b in bases.basis}  # the small bank's first months have no model
    assert all((b[0] == "uplift") == m for b, m in zip(bases.basis, bases.model, strict=True))
    for month, rows in actions.groupby("month_start"):
        contactable = rows[rows.max_contacts_per_month > 0]
        assert rows.contact_priority.notna().sum() == len(contactable) > 0
        contactable = contactable.assign(tier=contactable.value_tier.map({"high": 0, "mid": 1, "low": 2}))
        tier_rule = (["tier", "value_score", "customer_id"], [True, False, True])
        predicted = [
            getattr(r, f"uplift_{r.next_best_product}") if isinstance(r.next_best_product, str) else np.nan
            for r in rows.itertuples()
        ]
        assert np.allclose(rows.predicted_uplift.astype(float), predicted, equal_nan=True)
        if rows.priority_basis.iloc[0] == "uplift":
            expected = contactable.sort_values(
                ["predicted_uplift", *tier_rule[0]], ascending=[False, *tier_rule[1]], na_position="last"
            )
        else:
            assert rows.predicted_uplift.isna().all()
            expected = contactable.sort_values(tier_rule[0], ascending=tier_rule[1])
        assert list(expected.contact_priority) == list(range(1, len(expected) + 1)), month
