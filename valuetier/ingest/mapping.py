"""The delivery mapping: how one bank's extract maps onto the raw data contract, without code changes.

A YAML file (documented in docs/bring-your-own-data.md):

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

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from valuetier.core.contract import OTHER_CODE, SOURCES

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
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # key path -> line in the file

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
    if unmapped == "other" and contract.column(column).closed:
        raise _fail(
            path,
            f"{key}.unmapped",
            f"must be quarantine: {column} is a closed set ({', '.join(allowed)}) that the evaluation splits on, "
            "so an unknown code loaded as 'other' would join one side of the split; map every code",
        )
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


# Plain (unquoted) scalars that YAML reads as something other than text, or that some YAML readers
# do: 01 (the number 1), no / on / y (booleans), 2024-01-05 and 2024-01 (dates), ~ (null), 1:20
# (a base-60 number in YAML 1.1). A code written so loses its spelling before ValueTier sees it.
_NOT_TEXT = re.compile(r"[-+]?[0-9][0-9_:.eExXoObB+-]*|[yYnN]|[0-9]{4}-[0-9]{1,2}(-[0-9]{1,2})?.*|~|")
_TEXT_TAG = "tag:yaml.org,2002:str"
MAPPING_NAMES = ("mapping.yml", "mapping.yaml")


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_code_position(keys: tuple[str, ...]) -> bool:
    """sources.<source>.codes.<column>.map: the bank's codes and the categories they map to."""
    return len(keys) == 5 and keys[0] == "sources" and keys[2] == "codes" and keys[4] == "map"


def _is_column_position(keys: tuple[str, ...]) -> bool:
    """sources.<source>.columns: the bank's column names."""
    return len(keys) == 3 and keys[0] == "sources" and keys[2] == "columns"


def _refuse_unquoted(path: Path, keys: tuple[str, ...], node: yaml.Node, what: str) -> None:
    if (
        isinstance(node, yaml.ScalarNode)
        and node.style is None
        and (node.tag != _TEXT_TAG or _NOT_TEXT.fullmatch(node.value))
    ):
        read_as = yaml.safe_load(node.value) if node.value else None
        how = (
            "a YAML reader may take it for a number, boolean or date"
            if isinstance(read_as, str)
            else f"YAML reads it as {read_as!r} ({type(read_as).__name__})"
        )
        raise MappingError(
            f"{path}: line {_line(node)}: {'.'.join(keys)}: the {what} {node.value!r} is not quoted, and {how}: "
            f"write it in quotes, '{node.value}'"
        )


def _walk(path: Path, node: yaml.Node, keys: tuple[str, ...], lines: dict[str, int]) -> None:
    """Refuse what YAML would read silently wrong, before it is read: a key written twice in one
    mapping (YAML keeps the last) and codes or column names YAML reads as numbers, booleans or dates.
    Records the line of every key, for messages that point at the entry."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _walk(path, item, keys, lines)
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        where = (*keys, key)
        if key in first:
            raise MappingError(
                f"{path}: line {_line(key_node)}: {'.'.join(where)} is written twice (lines {first[key]} and "
                f"{_line(key_node)}); YAML would keep only the last one: remove one of them"
            )
        first[key] = _line(key_node)
        lines[".".join(where)] = _line(key_node)
        if _is_code_position(keys):
            _refuse_unquoted(path, where, key_node, "code")
            _refuse_unquoted(path, where, value_node, "category")
        if _is_column_position(keys):
            _refuse_unquoted(path, where, value_node, "column name")
        _walk(path, value_node, where, lines)


def _text(path: Path) -> str:
    """The file as UTF-8 text (a byte-order mark allowed); another encoding is refused at its first line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MappingError(
            f"{path}: line {line}: not UTF-8 text (Big5 or GBK?): save the mapping file encoded as UTF-8"
        ) from exc


def load_mapping(path: Path | None) -> Mapping:
    """The mapping in `path`, or the contract's own names and codes when there is none."""
    if path is None:
        return Mapping()
    if not path.is_file():
        raise MappingError(f"{path}: no such mapping file")
    text = _text(path)
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            raise MappingError(
                f"{path}: the mapping file is empty: write the mapping in it (docs/bring-your-own-data.md), "
                "or remove it to load the contract's own names and codes"
            )
        _walk(path, root, (), lines)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    return replace(parse_mapping(path, document), lines=lines)


def find_mapping(landing: Path) -> Path | None:
    """The landing folder's delivery mapping: mapping.yml or mapping.yaml, else None. A file whose name
    is a near miss (Mapping.yml, mappings.yml, mapping.yml.txt) is an error that names it, never
    taken for 'no mapping'."""
    found = [landing / name for name in MAPPING_NAMES if (landing / name).is_file()]
    if len(found) > 1:
        raise MappingError(f"{found[0]} and {found[1]}: two mapping files in the landing folder; remove one")
    if found:
        return found[0]
    if landing.is_dir():
        for candidate in sorted(p for p in landing.iterdir() if p.is_file()):
            if difflib.get_close_matches(candidate.name.lower(), MAPPING_NAMES, n=1, cutoff=0.8):
                raise MappingError(
                    f"{candidate}: looks like the delivery mapping but is not named mapping.yml: rename it "
                    "(or name it with --mapping / VALUETIER_MAPPING)"
                )
    return None


def mapping_in_force(mapping_file: Path | None, landing: Path) -> Path | None:
    """The delivery mapping a run reads: the one named (VALUETIER_MAPPING), else the landing folder's
    (find_mapping), else None for the contract's own names and codes."""
    return mapping_file if mapping_file is not None else find_mapping(landing)
