"""The delivery mapping: how one bank's extract maps onto the raw data contract, without code changes.

A YAML file (documented in the README, "Bring your own data"):

    timezone: Asia/Shanghai     # naive timestamps are this zone's wall clock (default UTC)
    money_minor_units: 2        # decimals money may carry; more is quarantined, never rounded
    sources:
      transactions:
        columns:                # contract column: the bank's column name
          transaction_id: txn_ref
          amount: txn_amt
        codes:                  # per coded column: the bank's code -> the contract's category
          txn_type:
            map: {card_purchase: purchase, transfer_in: transfer}
            unmapped: quarantine   # or: other (loaded as 'other' and counted)

Ingestion and `valuetier validate-landing` read it through `load_mapping`, the one code path; with
no file, the contract's own names and categories apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from valuetier.contract import OTHER_CODE, SOURCES

UNMAPPED_ACTIONS = ("quarantine", "other")
DEFAULT_MINOR_UNITS = 2


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the key that is wrong."""


@dataclass(frozen=True)
class CodeMap:
    codes: dict[str, str] = field(default_factory=dict)  # bank code -> contract category
    unmapped: str = "quarantine"


@dataclass(frozen=True)
class SourceMapping:
    columns: dict[str, str] = field(default_factory=dict)  # contract column -> the bank's column name
    codes: dict[str, CodeMap] = field(default_factory=dict)  # contract column -> its code map

    def contract_name(self, delivered: str) -> str:
        """The contract column a delivered column stands for (itself when not renamed)."""
        renamed = {bank.lower(): contract for contract, bank in self.columns.items()}
        return renamed.get(delivered, delivered)

    def delivered_name(self, contract: str) -> str:
        return self.columns.get(contract, contract)


@dataclass(frozen=True)
class Mapping:
    path: Path | None = None
    timezone: str = "UTC"
    money_minor_units: int = DEFAULT_MINOR_UNITS
    sources: dict[str, SourceMapping] = field(default_factory=dict)

    def source(self, name: str) -> SourceMapping:
        return self.sources.get(name, SourceMapping())

    @property
    def described(self) -> str:
        return str(self.path) if self.path else "the contract's own names and codes (no mapping file)"


def _fail(path: Path, key: str, problem: str) -> MappingError:
    return MappingError(f"{path}: {key}: {problem}")


def _mapping_of(path: Path, key: str, value, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, key, f"must be a mapping, not {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _fail(path, f"{key}.{unknown[0]}", f"unknown key; expected one of {', '.join(allowed)}")
    return value


def _code_map(path: Path, key: str, source: str, column: str, spec) -> CodeMap:
    contract = SOURCES[source]
    coded = [c.name for c in contract.columns if c.allowed]
    if column not in coded:
        raise _fail(path, key, f"{source}.{column} is not a coded column; coded columns: {', '.join(coded)}")
    spec = _mapping_of(path, key, spec, ("map", "unmapped"))
    allowed = contract.column(column).allowed
    codes = spec.get("map") or {}
    if not isinstance(codes, dict):
        raise _fail(path, f"{key}.map", "must map the bank's codes to the contract's categories")
    for code, category in codes.items():
        if str(category) not in (*allowed, OTHER_CODE):
            raise _fail(
                path, f"{key}.map.{code}", f"{category!r} is not a category of {column}: {', '.join(allowed)}, other"
            )
    unmapped = spec.get("unmapped", "quarantine")
    if unmapped not in UNMAPPED_ACTIONS:
        raise _fail(path, f"{key}.unmapped", f"must be quarantine or other, not {unmapped!r}")
    return CodeMap({str(k): str(v) for k, v in codes.items()}, unmapped)


def parse_mapping(path: Path, document) -> Mapping:
    """Validate a parsed mapping document; every error names the file and the key that is wrong."""
    document = _mapping_of(path, "(top level)", document or {}, ("timezone", "money_minor_units", "sources"))
    timezone = str(document.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail(path, "timezone", f"not a time zone name (UTC, Asia/Shanghai, ...): {timezone!r}") from exc
    minor_units = document.get("money_minor_units", DEFAULT_MINOR_UNITS)
    if not isinstance(minor_units, int) or isinstance(minor_units, bool) or not 0 <= minor_units <= 2:
        raise _fail(path, "money_minor_units", f"must be a whole number from 0 to 2, not {minor_units!r}")
    sources = {}
    for name, spec in _mapping_of(path, "sources", document.get("sources") or {}, tuple(SOURCES)).items():
        spec = _mapping_of(path, f"sources.{name}", spec or {}, ("columns", "codes"))
        contract = SOURCES[name]
        columns = _mapping_of(path, f"sources.{name}.columns", spec.get("columns") or {}, contract.column_names)
        seen: dict[str, str] = {}
        for column, delivered in columns.items():
            if not isinstance(delivered, str) or not delivered.strip():
                raise _fail(path, f"sources.{name}.columns.{column}", "must name the bank's column")
            if delivered.lower() in seen:
                raise _fail(
                    path,
                    f"sources.{name}.columns.{column}",
                    f"{delivered!r} is already mapped to {seen[delivered.lower()]}",
                )
            seen[delivered.lower()] = column
        codes = _mapping_of(path, f"sources.{name}.codes", spec.get("codes") or {}, contract.column_names)
        sources[name] = SourceMapping(
            {c: d.strip() for c, d in columns.items()},
            {c: _code_map(path, f"sources.{name}.codes.{c}", name, c, s) for c, s in codes.items()},
        )
    return Mapping(path, timezone, minor_units, sources)


def load_mapping(path: Path | None) -> Mapping:
    """The mapping in `path`, or the contract's own names and codes when there is none."""
    if path is None:
        return Mapping()
    if not path.is_file():
        raise MappingError(f"{path}: no such mapping file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    return parse_mapping(path, document)
