"""The one settings object. Every environment variable ValueTier reads is read here."""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from valuetier.core.leftovers import PAUSE_POINTS
from valuetier.core.notices import warn_once

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"  # the dbt project, its profile and its vars (the business parameters)
DEV_PII_KEY = "valuetier-development-key-do-not-use-in-production"
DEV_PII_KEY_NAME = "development"  # VALUETIER_PII_KEY=development: the public key, for the demo only
MODES = ("development", "production")  # VALUETIER_MODE
DBT_TARGETS = ("duckdb", "spark")  # VALUETIER_DBT_TARGET: the outputs of dbt_project/profiles.yml
MIN_PRODUCTION_KEY_LENGTH = 32  # characters of a production PII key (HMAC-SHA256 takes up to 64 bytes whole)


class SettingsError(ValueError):
    """The environment does not allow a run: the message says which variable, or file, to fix."""


def pii_key_from(env: dict[str, str], mode: str) -> str | None:
    """The PII hashing key the environment gives: VALUETIER_PII_KEY, or the first line of the file
    VALUETIER_PII_KEY_FILE names (a secret mounted outside the repository); VALUETIER_PII_KEY=
    development names the public development key (the demo's). None: no key given, and a
    development run uses the key generated for this account (generated_pii_key). In production a
    long key is required."""
    if env.get("VALUETIER_PII_KEY") and env.get("VALUETIER_PII_KEY_FILE"):
        raise SettingsError("set VALUETIER_PII_KEY or VALUETIER_PII_KEY_FILE, not both")
    key = env.get("VALUETIER_PII_KEY") or None
    if key == DEV_PII_KEY_NAME:
        key = DEV_PII_KEY
    if env.get("VALUETIER_PII_KEY_FILE"):
        path = Path(env["VALUETIER_PII_KEY_FILE"]).expanduser().resolve()
        if path.is_relative_to(REPO_ROOT):
            raise SettingsError(f"VALUETIER_PII_KEY_FILE {path} is inside the repository: keep the secret outside it")
        try:
            key = path.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise SettingsError(f"VALUETIER_PII_KEY_FILE {path} cannot be read: {exc.strerror}") from exc
        if key is None:
            raise SettingsError(f"VALUETIER_PII_KEY_FILE {path} is empty")
    if mode == "production":
        if key is None or key == DEV_PII_KEY:
            raise SettingsError(
                "production mode (VALUETIER_MODE=production) refuses to start without a PII key: set "
                "VALUETIER_PII_KEY, or VALUETIER_PII_KEY_FILE to a secret file outside the repository"
            )
        if len(key) < MIN_PRODUCTION_KEY_LENGTH:
            raise SettingsError(
                f"the PII key has {len(key)} characters; production mode wants at least {MIN_PRODUCTION_KEY_LENGTH} "
                "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
            )
    return key


def generated_key_path(env: dict[str, str]) -> Path:
    """Where a run without a given key keeps the one it generated: the account's configuration
    folder ($XDG_CONFIG_HOME, default ~/.config), outside any repository and warehouse."""
    config = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")
    return config.expanduser().resolve() / "valuetier" / "pii.key"


def generated_pii_key(path: Path) -> str:
    """The key generated for this account: read from `path`, or on the first run created there
    (random, 256 bits, mode 0600, said in a warning). Every later run reuses it: every hash depends
    on it, so it is backed up with the warehouse."""
    if path.is_relative_to(REPO_ROOT):
        raise SettingsError(f"the generated PII key's file {path} would be inside the repository: set XDG_CONFIG_HOME")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            return generated_pii_key(path)
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.warning(
            f"no PII key was given (VALUETIER_PII_KEY or VALUETIER_PII_KEY_FILE): created a secret key in {path} "
            "(mode 0600), which every later run on this account reuses. Back it up with the warehouse: every "
            "hash depends on it"
        )
        return generated_pii_key(path)
    if not key:
        raise SettingsError(f"the generated PII key's file {path} is empty: restore it from its backup")
    return key


def _path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path)


@dataclass(frozen=True)
class DuckDBLimits:
    """The resources every DuckDB connection may use: Python's connections and dbt's profile alike
    (DuckDB's own default is 80 % of the machine's memory and every core, for each process)."""

    # The defaults are dbt_project/profiles.yml's too (tests/test_settings.py holds them equal).
    memory_limit: str = "4GB"  # VALUETIER_DUCKDB_MEMORY_LIMIT: beyond it DuckDB spills to temp_directory
    threads: int = 2  # VALUETIER_DUCKDB_THREADS: the two cores ValueTier is sized for; more on a larger machine
    temp_directory: str = ""  # VALUETIER_DUCKDB_TEMP_DIRECTORY; default: duckdb_tmp beside the warehouse

    @classmethod
    def from_env(cls, env: dict[str, str], warehouse_dir: Path) -> DuckDBLimits:
        threads = env.get("VALUETIER_DUCKDB_THREADS", str(cls.threads))
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"VALUETIER_DUCKDB_THREADS must be a positive whole number, not {threads!r}")
        return cls(
            memory_limit=env.get("VALUETIER_DUCKDB_MEMORY_LIMIT", cls.memory_limit),
            threads=int(threads),
            temp_directory=str(_path(env.get("VALUETIER_DUCKDB_TEMP_DIRECTORY", str(warehouse_dir / "duckdb_tmp")))),
        )

    @classmethod
    def for_warehouse(cls, warehouse_path: Path) -> DuckDBLimits:
        """The limits in force for a warehouse file, from this process's environment."""
        return cls.from_env(dict(os.environ), warehouse_path.parent)

    def config(self) -> dict[str, str]:
        """duckdb.connect's config. Insertion order is not kept: every read that needs an order says
        it (ORDER BY), and keeping it costs memory on large inserts."""
        config = {"memory_limit": self.memory_limit, "threads": str(self.threads), "preserve_insertion_order": "false"}
        return config | ({"temp_directory": self.temp_directory} if self.temp_directory else {})

    def environment(self) -> dict[str, str]:
        """What dbt's profile reads (dbt_project/profiles.yml, `settings`)."""
        return {
            "VALUETIER_DUCKDB_MEMORY_LIMIT": self.memory_limit,
            "VALUETIER_DUCKDB_THREADS": str(self.threads),
            "VALUETIER_DUCKDB_TEMP_DIRECTORY": self.temp_directory,
        }


@dataclass(frozen=True)
class Settings:
    """Runtime settings; see docs/settings.md for each variable."""

    landing_dir: Path
    warehouse_path: Path
    given_pii_key: str | None = field(repr=False)  # a secret: never in a repr, a log or an error message
    dbt_target: str
    mapping_file: Path | None = None  # VALUETIER_MAPPING; default: mapping.yml (or .yaml) in the landing folder
    alert_webhook_url: str | None = None  # VALUETIER_ALERT_WEBHOOK; without it alerts go to alerts_file
    playbook_file: Path = REPO_ROOT / "playbook.yml"  # VALUETIER_PLAYBOOK: the actions per segment and tier
    duckdb: DuckDBLimits = DuckDBLimits()
    mode: str = "development"  # VALUETIER_MODE: production refuses to run without a secret PII key
    exchange_dir: Path | None = None  # VALUETIER_EXCHANGE_DIR; default: "exchange" beside the warehouse file
    generated_pii_key_file: Path | None = None  # where the key lives when none is given (generated_key_path)
    pii_key_source: str = ""  # where the key comes from, for the run's summary (never the key)
    pause_at: str | None = None  # VALUETIER_PAUSE_AT: a pause point a test holds a run at (valuetier.core.leftovers)

    @property
    def pii_key(self) -> str:
        """The key personal data is hashed with: the one given, else the account's generated key
        (created when first needed, by the first ingestion)."""
        if self.given_pii_key is not None:
            return self.given_pii_key
        return generated_pii_key(self.generated_pii_key_file)

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse_path.parent

    @property
    def models_dir(self) -> Path:
        """The model registry (valuetier.tiering.registry), beside the warehouse file."""
        return self.warehouse_dir / "models"

    @property
    def quality_dir(self) -> Path:
        """Great Expectations' stores and Data Docs (valuetier.quality.suites), beside the warehouse file."""
        return self.warehouse_dir / "quality"

    @property
    def reports_dir(self) -> Path:
        """The monthly HTML reports (valuetier.application.report), beside the warehouse file."""
        return self.warehouse_dir / "reports"

    @property
    def alerts_file(self) -> Path:
        """The monitoring alerts of every run, one JSON line each (valuetier.application.notify),
        beside the warehouse."""
        return self.warehouse_dir / "alerts" / "alerts.jsonl"

    @property
    def logs_dir(self) -> Path:
        """The console runs' full logs, text and JSON lines (orchestration.run), beside the warehouse."""
        return self.warehouse_dir / "logs"

    @property
    def published_dir(self) -> Path:
        """What BI reads while the pipeline writes (valuetier.application.publish), beside the warehouse file."""
        return self.warehouse_dir / "published"

    @property
    def exchange_path(self) -> Path:
        """Where Python steps and a dbt engine other than DuckDB (VALUETIER_DBT_TARGET=spark) exchange
        tables as Parquet (valuetier.core.exchange)."""
        return self.exchange_dir or self.warehouse_dir / "exchange"

    @property
    def uses_development_pii_key(self) -> bool:
        return self.given_pii_key == DEV_PII_KEY

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        mode = env.get("VALUETIER_MODE", "development")
        if mode not in MODES:
            raise SettingsError(f"VALUETIER_MODE must be one of {', '.join(MODES)}, not {mode!r}")
        warehouse_path = _path(env.get("VALUETIER_WAREHOUSE", "data/warehouse/valuetier.duckdb"))
        given_key = pii_key_from(env, mode)
        settings = cls(
            landing_dir=_path(env.get("VALUETIER_LANDING", "data/landing")),
            warehouse_path=warehouse_path,
            given_pii_key=given_key,
            generated_pii_key_file=None if given_key is not None else generated_key_path(env),
            pii_key_source=(
                "the public development key (VALUETIER_PII_KEY=development): for the demo only"
                if given_key == DEV_PII_KEY
                else "VALUETIER_PII_KEY_FILE"
                if env.get("VALUETIER_PII_KEY_FILE")
                else "VALUETIER_PII_KEY"
                if given_key is not None
                else f"generated for this account: {generated_key_path(env)}"
            ),
            dbt_target=env.get("VALUETIER_DBT_TARGET", "duckdb"),
            mapping_file=_path(env["VALUETIER_MAPPING"]) if env.get("VALUETIER_MAPPING") else None,
            alert_webhook_url=env.get("VALUETIER_ALERT_WEBHOOK") or None,
            playbook_file=_path(env.get("VALUETIER_PLAYBOOK", str(REPO_ROOT / "playbook.yml"))),
            duckdb=DuckDBLimits.from_env(env, warehouse_path.parent),
            mode=mode,
            exchange_dir=_path(env["VALUETIER_EXCHANGE_DIR"]) if env.get("VALUETIER_EXCHANGE_DIR") else None,
            pause_at=env.get("VALUETIER_PAUSE_AT") or None,
        )
        if settings.pause_at is not None and settings.pause_at not in PAUSE_POINTS:
            raise SettingsError(
                f"VALUETIER_PAUSE_AT must be one of {', '.join(PAUSE_POINTS)}, not {settings.pause_at!r}"
            )
        if settings.dbt_target not in DBT_TARGETS:
            raise SettingsError(
                f"VALUETIER_DBT_TARGET must be one of {', '.join(DBT_TARGETS)} (dbt_project/profiles.yml), "
                f"not {settings.dbt_target!r}"
            )
        if settings.dbt_target == "spark" and importlib.util.find_spec("dbt.adapters.spark") is None:
            raise SettingsError("VALUETIER_DBT_TARGET=spark needs dbt-spark and pyspark: run `make spark` first")
        if settings.uses_development_pii_key:
            warn_once(
                log,
                "VALUETIER_PII_KEY=development: personal data is hashed with the public development key, "
                "which is for the demo only. Never load real customer data with it.",
            )
        return settings

    def dbt_environment(self) -> dict[str, str]:
        """What the dbt subprocess must see: absolute paths, so dbt and Python open the same file,
        and the target its profile picks. Not the PII key: personal data is hashed at ingestion, and
        dbt never needs it."""
        return {
            "VALUETIER_DBT_TARGET": self.dbt_target,
            "VALUETIER_WAREHOUSE": str(self.warehouse_path),
            "VALUETIER_EXCHANGE_DIR": str(self.exchange_path),
            **self.duckdb.environment(),
        }
