"""The playbook (playbook.yml): the actions the bank takes for each action segment and tier, and
`marts.crm_actions`, one row per tiered customer and month that a CRM loads.

The playbook is checked as a whole before anything is written: an unknown key, segment, tier,
service level, channel, product or pricing treatment, a duplicate rule, or a segment and tier that
no rule covers is refused with the file and line. The next best product is, of the rule's offer,
the product the customer does not hold that the most customers of the same month, tier and segment
hold (ties to the earlier in the offer); null without an accounts delivery, or when the customer
holds every product offered. Each customer the CRM may contact (a contact cap above zero) gets a
contact priority, 1 the first to contact: by the predicted uplift of the next best product
(valuetier.tiering.uplift) in a month that has an uplift model, by the tier rule (high tier first,
then the value score) in one that has not, and for customers with no product to offer;
priority_basis says which rule the month used. The caps stay the playbook's. crm_actions carries
the customer id only: no name, id number, phone or e-mail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from valuetier.core.contract import PRODUCT_TYPES
from valuetier.core.months import parse_month
from valuetier.core.tables import (
    CRM_ACTIONS_TABLE,
    INDICATORS_TABLE,
    TIERS_TABLE,
    UPLIFT_TABLE,
    ensure_crm_actions_tables,
)
from valuetier.core.warehouse import transaction
from valuetier.tiering.scoring import ACTION_SEGMENTS

SERVICE_LEVELS = ("dedicated_manager", "priority_queue", "standard", "digital_self_service")
CHANNELS = ("relationship_manager", "branch", "phone", "app", "email", "sms")
PRICING = ("preferential", "retention_rate", "welcome_offer", "standard")
ANY_TIER = "*"
RULE_KEYS = ("segment", "tier", "service_level", "channel", "offer", "pricing", "max_contacts_per_month")


class PlaybookError(ValueError):
    """A playbook that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Rule:
    segment: str
    tier: str
    service_level: str
    channel: str
    offer: tuple[str, ...]
    pricing: str
    max_contacts_per_month: int
    line: int


@dataclass(frozen=True)
class Playbook:
    path: Path
    sha256: str
    rules: tuple[Rule, ...]

    def rule_for(self, segment: str, tier: str) -> Rule:
        specific = [r for r in self.rules if r.segment == segment and r.tier == tier]
        return (specific or [r for r in self.rules if r.segment == segment and r.tier == ANY_TIER])[0]


def load_playbook(path: Path) -> Playbook:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from exc

    def fail(node, message: str):
        raise PlaybookError(f"{path}:{node.start_mark.line + 1}: {message}")

    if not isinstance(root, yaml.MappingNode):
        raise PlaybookError(f"{path}:1: the playbook must be a mapping with a 'rules' list")
    top = {k.value: v for k, v in root.value}
    if set(top) != {"rules"} or not isinstance(top["rules"], yaml.SequenceNode):
        fail(root, "the playbook must hold one key, 'rules', a list of rules")
    rules = []
    for node in top["rules"].value:
        if not isinstance(node, yaml.MappingNode):
            fail(node, "a rule must be a mapping of " + ", ".join(RULE_KEYS))
        fields = {k.value: (k, v) for k, v in node.value}
        for key, (key_node, _) in fields.items():
            if key not in RULE_KEYS:
                fail(key_node, f"unknown key {key!r}; a rule has {', '.join(RULE_KEYS)}")
        for key in RULE_KEYS:
            if key not in fields:
                fail(node, f"the rule lacks {key!r}")
        rules.append(_rule(fields, fail))
    seen: dict[tuple[str, str], Rule] = {}
    for rule, node in zip(rules, top["rules"].value, strict=True):
        if (rule.segment, rule.tier) in seen:
            fail(node, f"a second rule for {rule.segment!r}, tier {rule.tier!r} (the first is on line "
                 f"{seen[(rule.segment, rule.tier)].line})")  # fmt: skip
        seen[(rule.segment, rule.tier)] = rule
    uncovered = [
        f"{segment!r} tier {tier!r}"
        for segment, tiers in ACTION_SEGMENTS.items()
        for tier in tiers
        if (segment, tier) not in seen and (segment, ANY_TIER) not in seen
    ]
    if uncovered:
        raise PlaybookError(f"{path}: no rule for {', '.join(uncovered)}; add one, or one with tier '*'")
    return Playbook(path, hashlib.sha256(text.encode()).hexdigest(), tuple(rules))


def _rule(fields: dict, fail) -> Rule:
    def scalar(key: str, allowed: tuple[str, ...]) -> str:
        node = fields[key][1]
        if not isinstance(node, yaml.ScalarNode) or node.value not in allowed:
            fail(node, f"{key} {getattr(node, 'value', node)!r} is not one of: {', '.join(allowed)}")
        return node.value

    segment = scalar("segment", tuple(ACTION_SEGMENTS))
    tier = scalar("tier", (*ACTION_SEGMENTS[segment], ANY_TIER))
    offer_node = fields["offer"][1]
    if not isinstance(offer_node, yaml.SequenceNode) or not offer_node.value:
        fail(offer_node, "offer must be a list of one or more products")
    offer = []
    for item in offer_node.value:
        if not isinstance(item, yaml.ScalarNode) or item.value not in PRODUCT_TYPES:
            fail(item, f"product {getattr(item, 'value', item)!r} is not one of: {', '.join(PRODUCT_TYPES)}")
        if item.value in offer:
            fail(item, f"product {item.value!r} is offered twice")
        offer.append(item.value)
    cap = fields["max_contacts_per_month"][1]
    if not isinstance(cap, yaml.ScalarNode) or not cap.value.isdigit():
        fail(cap, f"max_contacts_per_month must be a whole number of contacts, not {getattr(cap, 'value', cap)!r}")
    return Rule(
        segment=segment,
        tier=tier,
        service_level=scalar("service_level", SERVICE_LEVELS),
        channel=scalar("channel", CHANNELS),
        offer=tuple(offer),
        pricing=scalar("pricing", PRICING),
        max_contacts_per_month=int(cap.value),
        line=fields["segment"][0].start_mark.line + 1,
    )


@dataclass(frozen=True)
class ActionsResult:
    month: str
    customers: int
    with_product: int
    by_service_level: dict[str, int]
    priority_basis: str  # 'uplift', or 'tier rule' for a month without an uplift model
    contactable: int  # customers with a contact priority


def build_crm_actions(con: duckdb.DuckDBPyConnection, month: str, playbook: Playbook) -> ActionsResult:
    """Write the month's crm_actions from its published tiers and indicators (replacing the month)."""
    start = parse_month(month)
    pairs = con.execute(
        f"SELECT DISTINCT segment, value_tier FROM {TIERS_TABLE} WHERE month_start = ? ORDER BY ALL", [start]
    ).fetchall()
    rows = []
    for segment, tier in pairs:
        if segment not in ACTION_SEGMENTS or tier not in ACTION_SEGMENTS[segment]:
            raise PlaybookError(f"{playbook.path}: the tiers of {month} hold segment {segment!r} with tier {tier!r}, "
                                "which the playbook does not know")  # fmt: skip
        rule = playbook.rule_for(segment, tier)
        rows += [
            (segment, tier, rule.service_level, rule.channel, rule.pricing, rule.max_contacts_per_month, rule.line,
             product, position)
            for position, product in enumerate(rule.offer)
        ]  # fmt: skip
    con.execute(
        "CREATE OR REPLACE TEMP TABLE playbook_offers (segment VARCHAR, value_tier VARCHAR, service_level VARCHAR, "
        "channel VARCHAR, pricing VARCHAR, max_contacts INTEGER, rule_line INTEGER, product VARCHAR, position INTEGER)"
    )
    if rows:
        con.executemany("INSERT INTO playbook_offers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    holds = " ".join(f"WHEN '{p}' THEN i.holds_{p}" for p in PRODUCT_TYPES)
    uplift = " ".join(f"WHEN '{p}' THEN u.uplift_{p}" for p in PRODUCT_TYPES)
    ensure_crm_actions_tables(con)
    by_uplift = con.execute(f"SELECT count(*) > 0 FROM {UPLIFT_TABLE} WHERE month_start = ?", [start]).fetchone()[0]
    # The customers the CRM may contact (a contact cap above zero), best first: by the predicted
    # uplift of their next best product where the month has an uplift model; else, and for those
    # with no product to offer, by the tier rule: high tier first, the higher value score first.
    tier_rule = "CASE value_tier WHEN 'high' THEN 1 WHEN 'mid' THEN 2 ELSE 3 END, value_score DESC, customer_id"
    priority_order = f"predicted_uplift DESC NULLS LAST, {tier_rule}" if by_uplift else tier_rule
    with transaction(con):
        con.execute(f"DELETE FROM {CRM_ACTIONS_TABLE} WHERE month_start = ?", [start])
        con.execute(
            f"""INSERT INTO {CRM_ACTIONS_TABLE}
            WITH offers AS (
                SELECT t.customer_id, t.month_start, t.value_tier, t.value_score, t.segment, o.service_level,
                       o.channel, o.pricing, o.max_contacts, o.rule_line, o.product, o.position,
                       CASE o.product {holds} END AS holds
                FROM {TIERS_TABLE} AS t
                JOIN playbook_offers AS o ON o.segment = t.segment AND o.value_tier = t.value_tier
                LEFT JOIN {INDICATORS_TABLE} AS i ON i.customer_id = t.customer_id AND i.month_start = t.month_start
                WHERE t.month_start = $month),
            uptake AS (  -- share of the month's customers of the same tier and segment holding each product
                SELECT value_tier, segment, product, avg(CAST(holds AS DOUBLE)) AS share
                FROM offers GROUP BY ALL),
            ranked AS (
                SELECT o.*, u.share,
                       row_number() OVER (PARTITION BY o.customer_id
                                          ORDER BY (o.holds IS NULL OR o.holds), u.share DESC NULLS LAST, o.position)
                           AS choice
                FROM offers AS o JOIN uptake AS u USING (value_tier, segment, product)),
            chosen AS (
                SELECT r.*, CASE WHEN NOT r.holds THEN r.product END AS next_best_product,
                       CASE WHEN NOT r.holds THEN CASE r.product {uplift} END END AS predicted_uplift
                FROM ranked AS r
                LEFT JOIN {UPLIFT_TABLE} AS u ON u.customer_id = r.customer_id AND u.month_start = r.month_start
                WHERE r.choice = 1),
            contactable AS (
                SELECT customer_id, row_number() OVER (ORDER BY {priority_order}) AS contact_priority
                FROM chosen WHERE max_contacts > 0)
            SELECT c.month_start, c.customer_id, c.value_tier, c.segment, c.service_level, c.channel,
                   c.next_best_product,
                   CASE WHEN NOT c.holds THEN round(c.share, 4) END AS next_best_product_uptake,
                   c.pricing AS pricing_treatment, c.max_contacts AS max_contacts_per_month,
                   c.rule_line AS playbook_line, $sha AS playbook_sha256,
                   c.predicted_uplift, p.contact_priority, $basis AS priority_basis
            FROM chosen AS c LEFT JOIN contactable AS p USING (customer_id)
            ORDER BY c.customer_id""",
            {"month": start, "sha": playbook.sha256, "basis": "uplift" if by_uplift else "tier rule"},
        )
    customers, with_product, contactable = con.execute(
        f"SELECT count(*), count(next_best_product), count(contact_priority) FROM {CRM_ACTIONS_TABLE} "
        "WHERE month_start = ?",
        [start],
    ).fetchone()
    levels = dict(
        con.execute(
            f"SELECT service_level, count(*) FROM {CRM_ACTIONS_TABLE} WHERE month_start = ? GROUP BY 1 ORDER BY 1",
            [start],
        ).fetchall()
    )
    tiered = con.execute(f"SELECT count(*) FROM {TIERS_TABLE} WHERE month_start = ?", [start]).fetchone()[0]
    if customers != tiered:
        raise AssertionError(f"crm_actions {month}: {customers} rows for {tiered} tiered customers")
    return ActionsResult(month, customers, with_product, levels, "uplift" if by_uplift else "tier rule", contactable)
