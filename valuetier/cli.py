"""`valuetier` command line: generate a demo bank, manage the model registry, audit the quarantine."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from valuetier.core.contract import SOURCE_ORDER
from valuetier.core.notices import new_command
from valuetier.core.settings import DuckDBLimits, Settings
from valuetier.core.warehouse import connect, export_quarantine, quarantine_query, table_exists
from valuetier.demo.config import ACQUISITIONS, PROFILES
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.ingest.landing_check import render, validate_landing
from valuetier.ingest.mapping import MappingError, find_mapping, load_mapping
from valuetier.quality.acceptance import AcceptanceError, accept, load_acceptances
from valuetier.quality.suites import all_suites
from valuetier.tiering.registry import Registry, RegistryError


def _generate(args: argparse.Namespace) -> int:
    cfg = GeneratorConfig(
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        out=Path(args.out),
        truth=Path(args.truth) if args.truth else None,
        start=args.start,
        file_format=args.format,
        dirty_rate=args.dirty_rate,
        chunk_size=args.chunk_size,
        sources=tuple(args.sources.split(",")) if args.sources else SOURCE_ORDER,
        margins=not args.no_margins,
        demographics=not args.no_demographics,
        profile=args.profile,
        acquisition=args.acquisition,
        growth=args.growth,
    )
    started = time.perf_counter()
    summary = generate(cfg, progress=lambda line: print(line, flush=True))
    print(
        f"wrote {sum(summary.rows.values()):,} rows to {cfg.out} in {time.perf_counter() - started:.1f}s; "
        f"ground truth in {cfg.truth_dir}" + (f"; {len(summary.faults)} faults injected" if summary.faults else "")
    )
    return 0


def _validate_landing(args: argparse.Namespace) -> int:
    landing = Path(args.landing)
    if not landing.is_dir():
        print(f"{landing}: no such landing folder", file=sys.stderr)
        return 2
    try:
        mapping = load_mapping(Path(args.mapping) if args.mapping else find_mapping(landing))
    except MappingError as exc:
        print(f"mapping error: {exc}", file=sys.stderr)
        return 2
    try:
        limits = DuckDBLimits.from_env(dict(os.environ), landing)
    except ValueError as exc:
        print(f"refusing to run: {exc}", file=sys.stderr)
        return 2
    report = validate_landing(
        landing, mapping, progress=lambda line: print(line, file=sys.stderr, flush=True), limits=limits
    )
    print(json.dumps(report.as_dict(), indent=1) if args.json else render(report))
    return 0 if report.ok else 1


def _quality_dir(args: argparse.Namespace) -> Path:
    return Path(args.quality_dir) if args.quality_dir else Settings.from_env().quality_dir


def _quality_accept(args: argparse.Namespace) -> int:
    known = {
        suite.name: [e["meta"]["check"] for e in suite.expectations if "check" in e["meta"]] for suite in all_suites()
    }
    try:
        acceptance = accept(_quality_dir(args), args.check, args.month, args.reason, known, by=args.by)
    except AcceptanceError as exc:
        print(f"not accepted: {exc}", file=sys.stderr)
        return 2
    print(
        f"accepted {acceptance.name} for {acceptance.month} ({acceptance.reason!r}, by {acceptance.accepted_by}); "
        "re-run the month for its check to pass with the acceptance shown"
    )
    return 0


def _quality_acceptances(args: argparse.Namespace) -> int:
    acceptances = load_acceptances(_quality_dir(args))
    if not acceptances:
        print("no accepted check failures")
    for a in acceptances:
        print(f"{a.month}  {a.name:<45} {a.accepted_by:<12} {a.accepted_at}  {a.reason}")
    return 0


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(Path(args.registry) if args.registry else Settings.from_env().models_dir)


def _model_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    versions = registry.versions()
    if not versions:
        print(f"no trained models in {registry.root}")
        return 0
    for version in versions:
        card = registry.card(version)
        capture = card.metrics.get("model", {}).get("high_tier_value_capture")
        print(f"{version}  {card.status:<10} holdout {card.holdout_month}  value capture {capture}  {card.decision}")
    return 0


def _model_rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    try:
        card = registry.rollback(args.version)
    except RegistryError as exc:
        print(f"cannot roll back to {args.version}: {exc}", file=sys.stderr)
        return 1
    print(f"{card.version} is the champion again ({card.decision})")
    return 0


def _warehouse(args: argparse.Namespace) -> Path:
    path = Path(args.warehouse) if args.warehouse else Settings.from_env().warehouse_path
    if not path.exists():
        raise SystemExit(f"no warehouse at {path}: run the pipeline first (make demo)")
    return path


def _quarantine_list(args: argparse.Namespace) -> int:
    with connect(_warehouse(args), read_only=True) as con:
        if not table_exists(con, "raw_quarantine", "quarantined_rows"):
            print("nothing has been ingested yet")
            return 0
        rows = con.execute(quarantine_query(args.month, args.source)).fetchall()
    if not rows:
        print(f"no quarantined rows for {args.month}" + (f" ({args.source})" if args.source else ""))
        return 0
    print(
        f"{len(rows):,} quarantined rows for {args.month}"
        + (f", showing {args.limit}" if len(rows) > args.limit else "")
    )
    for source, _, file, row, reason, column, detail, _ in rows[: args.limit]:
        print(f"  {source:<20} {file}:{row:<8} {reason:<20} {column or '':<22} {detail or ''}")
    return 0


def _quarantine_export(args: argparse.Namespace) -> int:
    with connect(_warehouse(args), read_only=True) as con:
        count = export_quarantine(con, args.month, Path(args.out), args.source)
    print(f"wrote {count:,} quarantined rows for {args.month} to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valuetier", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a generated demo bank in the raw data contract")
    gen.add_argument("--customers", type=int, default=20_000)
    gen.add_argument("--months", type=int, default=36)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True, help="landing folder to write (one folder per source)")
    gen.add_argument("--truth", help="ground-truth folder (default: 'ground_truth' beside --out)")
    gen.add_argument("--start", default="2023-01", help="first month, YYYY-MM")
    gen.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    gen.add_argument("--dirty-rate", type=float, default=0.0, help="share of rows to corrupt (0 = clean)")
    gen.add_argument("--chunk-size", type=int, default=50_000, help="customers generated per chunk")
    gen.add_argument(
        "--sources",
        help="comma-separated sources to deliver (default: all; customers,transactions is the least a bank delivers)",
    )
    gen.add_argument("--no-margins", action="store_true", help="transactions without fee_income/net_interest_margin")
    gen.add_argument("--no-demographics", action="store_true", help="customers without birth_date/income_band")
    gen.add_argument(
        "--profile",
        default="contract",
        choices=list(PROFILES),
        help="foreign: the bank's own column names and codes, with landing/mapping.yml mapping them",
    )
    gen.add_argument(
        "--acquisition",
        default="steady",
        choices=list(ACQUISITIONS),
        help="cohorts: every customer joins in the first 3 months (a campaign-built bank)",
    )
    gen.add_argument(
        "--growth", type=float, default=0.0, help="monthly growth of every customer's ticket size (0.02 = 2 %%)"
    )
    gen.set_defaults(func=_generate)

    check = sub.add_parser(
        "validate-landing",
        help="check a landing folder against the contract and mapping, without touching the warehouse",
    )
    check.add_argument("landing", help="the landing folder: <source>/<YYYY-MM>.parquet or .csv")
    check.add_argument("--mapping", help="delivery mapping YAML (default: mapping.yml in the landing folder)")
    check.add_argument("--json", action="store_true", help="the report as JSON")
    check.set_defaults(func=_validate_landing)

    model = sub.add_parser("model", help="the tiering model registry: list versions, roll back")
    model.add_argument("--registry", help="registry folder (default: 'models' beside the warehouse)")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_sub.add_parser("list", help="every version with its status and holdout value capture").set_defaults(
        func=_model_list
    )
    rollback = model_sub.add_parser("rollback", help="make a named version the champion again")
    rollback.add_argument("version", help="for example v0003")
    rollback.set_defaults(func=_model_rollback)

    quality = sub.add_parser("quality", help="accept a learned check's failure for a month, with a reason")
    quality.add_argument("--quality-dir", help="quality folder (default: 'quality' beside the warehouse)")
    quality_sub = quality.add_subparsers(dest="quality_command", required=True)
    accepting = quality_sub.add_parser("accept", help="let a volume, distribution or quarantine-share check pass")
    accepting.add_argument("--month", required=True, help="the flagged month, YYYY-MM")
    accepting.add_argument(
        "--check", required=True, help="SUITE.CHECK as the failure names it, e.g. raw_transactions.volume"
    )
    accepting.add_argument("--reason", required=True, help="why the month is right (stored and shown)")
    accepting.add_argument("--by", help="who accepts (default: the login name)")
    accepting.set_defaults(func=_quality_accept)
    quality_sub.add_parser("acceptances", help="every acceptance in force").set_defaults(func=_quality_acceptances)

    quarantine = sub.add_parser("quarantine", help="the rows a delivery month had rejected, with reasons")
    quarantine.add_argument("--warehouse", help="DuckDB file (default: VALUETIER_WAREHOUSE)")
    quarantine_sub = quarantine.add_subparsers(dest="quarantine_command", required=True)
    listing = quarantine_sub.add_parser("list", help="print a month's quarantined rows: file, row, reason, column")
    export = quarantine_sub.add_parser("export", help="write a month's quarantined rows to .csv or .parquet")
    export.add_argument("--out", required=True, help="file to write (.csv or .parquet)")
    for command, func in ((listing, _quarantine_list), (export, _quarantine_export)):
        command.add_argument("--month", required=True, help="delivery month, YYYY-MM")
        command.add_argument("--source", help="one source only, e.g. transactions")
        command.set_defaults(func=func)
    listing.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    new_command()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
